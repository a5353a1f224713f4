// Package dataset is the labelled-trip table of taxi-mlops in Apache Parquet:
// a ride with its actual outcome per row, written and read with Arrow.
//
// Snapshots made for retraining, the offline feature store that Feast reads
// and TFX's ExampleGen input all use this one schema. event_timestamp (the
// pickup) is the time column Feast's FileSource expects.
package dataset

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/taxi-mlops/taxi-mlops/contracts"
)

// Row is one labelled trip: the ride as published and what it cost.
type Row struct {
	Ride   contracts.RawRide
	Actual contracts.Actual
}

// Column names of the Parquet schema.
const (
	ColTripID           = "trip_id"
	ColEventTimestamp   = "event_timestamp"
	ColDropoffTimestamp = "dropoff_timestamp"
	ColPickupLat        = "pickup_latitude"
	ColPickupLon        = "pickup_longitude"
	ColDropoffLat       = "dropoff_latitude"
	ColDropoffLon       = "dropoff_longitude"
	ColPickupArea       = "pickup_community_area"
	ColDropoffArea      = "dropoff_community_area"
	ColTripMiles        = "trip_miles"
	ColTripSeconds      = "trip_seconds"
	ColFareAmount       = "fare_amount"
	ColPaymentType      = "payment_type"
	ColCompany          = "company"
	ColFare             = "fare"
	ColTips             = "tips"
	ColPickupTract      = "pickup_census_tract"
	ColDropoffTract     = "dropoff_census_tract"
)

var tsType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// Schema is the Arrow schema of the table.
func Schema() *arrow.Schema {
	f := func(name string, t arrow.DataType, nullable bool) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: nullable}
	}
	return arrow.NewSchema([]arrow.Field{
		f(ColTripID, arrow.BinaryTypes.String, false),
		f(ColEventTimestamp, tsType, false),
		f(ColDropoffTimestamp, tsType, false),
		f(ColPickupLat, arrow.PrimitiveTypes.Float64, true),
		f(ColPickupLon, arrow.PrimitiveTypes.Float64, true),
		f(ColDropoffLat, arrow.PrimitiveTypes.Float64, true),
		f(ColDropoffLon, arrow.PrimitiveTypes.Float64, true),
		f(ColPickupArea, arrow.PrimitiveTypes.Int32, true),
		f(ColDropoffArea, arrow.PrimitiveTypes.Int32, true),
		f(ColTripMiles, arrow.PrimitiveTypes.Float64, false),
		f(ColTripSeconds, arrow.PrimitiveTypes.Float64, true),
		f(ColFareAmount, arrow.PrimitiveTypes.Float64, false),
		f(ColPaymentType, arrow.BinaryTypes.String, false),
		f(ColCompany, arrow.BinaryTypes.String, false),
		f(ColFare, arrow.PrimitiveTypes.Float64, false),
		f(ColTips, arrow.PrimitiveTypes.Float64, false),
		f(ColPickupTract, arrow.BinaryTypes.String, true),
		f(ColDropoffTract, arrow.BinaryTypes.String, true),
	}, nil)
}

// Write writes rows as one Parquet file (Snappy-compressed).
func Write(w io.Writer, rows []Row) error {
	mem := memory.DefaultAllocator
	schema := Schema()
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := range rows {
		r := &rows[i]
		b.Field(0).(*array.StringBuilder).Append(r.Ride.TripID)
		b.Field(1).(*array.TimestampBuilder).Append(ts(r.Ride.PickupDatetime))
		b.Field(2).(*array.TimestampBuilder).Append(ts(r.Actual.DropoffDatetime))
		optFloat(b.Field(3), r.Ride.PickupLatitude)
		optFloat(b.Field(4), r.Ride.PickupLongitude)
		optFloat(b.Field(5), r.Ride.DropoffLatitude)
		optFloat(b.Field(6), r.Ride.DropoffLongitude)
		optInt(b.Field(7), r.Ride.PickupCommunityArea)
		optInt(b.Field(8), r.Ride.DropoffCommunityArea)
		b.Field(9).(*array.Float64Builder).Append(deref(r.Ride.TripDistance))
		optFloat(b.Field(10), r.Ride.TripSeconds)
		b.Field(11).(*array.Float64Builder).Append(deref(r.Ride.FareAmount))
		b.Field(12).(*array.StringBuilder).Append(r.Ride.PaymentType)
		b.Field(13).(*array.StringBuilder).Append(r.Ride.Company)
		b.Field(14).(*array.Float64Builder).Append(r.Actual.Fare)
		b.Field(15).(*array.Float64Builder).Append(r.Actual.Tips)
		optString(b.Field(16), r.Ride.PickupCensusTract)
		optString(b.Field(17), r.Ride.DropoffCensusTract)
	}
	rec := b.NewRecord()
	defer rec.Release()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	fw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	if err := fw.Write(rec); err != nil {
		fw.Close()
		return fmt.Errorf("write parquet: %w", err)
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	return nil
}

// Encode returns rows as Parquet bytes.
func Encode(rows []Row) ([]byte, error) {
	var buf bytes.Buffer
	if err := Write(&buf, rows); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Read reads a Parquet file of this schema. Columns are found by name, so
// files with extra columns (written by other tools) are accepted.
func Read(ctx context.Context, data []byte) ([]Row, error) {
	tbl, err := pqarrow.ReadTable(ctx, bytes.NewReader(data), parquet.NewReaderProperties(memory.DefaultAllocator),
		pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("read parquet: %w", err)
	}
	defer tbl.Release()
	n := int(tbl.NumRows())
	rows := make([]Row, n)
	schema := tbl.Schema()
	for _, want := range Schema().Fields() {
		idx := schema.FieldIndices(want.Name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("read parquet: column %q is missing", want.Name)
		}
		col := tbl.Column(idx[0])
		if !arrow.TypeEqual(col.DataType(), want.Type) {
			return nil, fmt.Errorf("read parquet: column %q is %s, want %s", want.Name, col.DataType(), want.Type)
		}
		if !want.Nullable && col.Data().NullN() > 0 {
			return nil, fmt.Errorf("read parquet: column %q has %d nulls but is required", want.Name, col.Data().NullN())
		}
		i := 0
		for _, chunk := range col.Data().Chunks() {
			for j := 0; j < chunk.Len(); j, i = j+1, i+1 {
				set(&rows[i], want.Name, chunk, j)
			}
		}
	}
	for i := range rows {
		rows[i].Ride.SchemaVersion = contracts.SchemaVersion
		rows[i].Actual.SchemaVersion = contracts.SchemaVersion
		rows[i].Actual.TripID = rows[i].Ride.TripID
		rows[i].Actual.PaymentType = rows[i].Ride.PaymentType
	}
	return rows, nil
}

func set(r *Row, col string, a arrow.Array, j int) {
	null := a.IsNull(j)
	f := func() *float64 {
		if null {
			return nil
		}
		v := a.(*array.Float64).Value(j)
		return &v
	}
	in := func() *int {
		if null {
			return nil
		}
		v := int(a.(*array.Int32).Value(j))
		return &v
	}
	t := func() time.Time {
		return a.(*array.Timestamp).Value(j).ToTime(arrow.Microsecond).UTC()
	}
	switch col {
	case ColTripID:
		r.Ride.TripID = a.(*array.String).Value(j)
	case ColEventTimestamp:
		r.Ride.PickupDatetime = t()
	case ColDropoffTimestamp:
		r.Actual.DropoffDatetime = t()
	case ColPickupLat:
		r.Ride.PickupLatitude = f()
	case ColPickupLon:
		r.Ride.PickupLongitude = f()
	case ColDropoffLat:
		r.Ride.DropoffLatitude = f()
	case ColDropoffLon:
		r.Ride.DropoffLongitude = f()
	case ColPickupArea:
		r.Ride.PickupCommunityArea = in()
	case ColDropoffArea:
		r.Ride.DropoffCommunityArea = in()
	case ColTripMiles:
		r.Ride.TripDistance = f()
	case ColTripSeconds:
		r.Ride.TripSeconds = f()
	case ColFareAmount:
		r.Ride.FareAmount = f()
	case ColPaymentType:
		r.Ride.PaymentType = a.(*array.String).Value(j)
	case ColCompany:
		r.Ride.Company = a.(*array.String).Value(j)
	case ColFare:
		r.Actual.Fare = *f()
	case ColTips:
		r.Actual.Tips = *f()
	case ColPickupTract:
		if !null {
			r.Ride.PickupCensusTract = a.(*array.String).Value(j)
		}
	case ColDropoffTract:
		if !null {
			r.Ride.DropoffCensusTract = a.(*array.String).Value(j)
		}
	}
}

func ts(t time.Time) arrow.Timestamp { return arrow.Timestamp(t.UnixMicro()) }

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func optFloat(b array.Builder, v *float64) {
	fb := b.(*array.Float64Builder)
	if v == nil {
		fb.AppendNull()
		return
	}
	fb.Append(*v)
}

func optString(b array.Builder, v string) {
	sb := b.(*array.StringBuilder)
	if v == "" {
		sb.AppendNull()
		return
	}
	sb.Append(v)
}

func optInt(b array.Builder, v *int) {
	ib := b.(*array.Int32Builder)
	if v == nil {
		ib.AppendNull()
		return
	}
	ib.Append(int32(*v))
}
