package dataset_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

var sample = sync.OnceValues(func() ([]dataset.Row, error) {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		return nil, err
	}
	trips, err := tripdata.Load(loc)
	if err != nil {
		return nil, err
	}
	tripdata.SortByStart(trips)
	rows := make([]dataset.Row, len(trips))
	for i := range trips {
		rows[i] = dataset.Row{Ride: rides.RawRide(&trips[i]), Actual: rides.Actual(&trips[i])}
	}
	return rows, nil
})

// sampleRows are the shipped trips as labelled rows, built the way the
// replayer publishes them; callers must not change them.
func sampleRows(t *testing.T) []dataset.Row {
	t.Helper()
	rows, err := sample()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// describe prints a row with its pointers as values, times as UTC instants.
// Census tracts are left out: the table has no column for them.
func describe(r *dataset.Row) string {
	f := func(p *float64) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprint(*p)
	}
	i := func(p *int) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprint(*p)
	}
	ride, a := &r.Ride, &r.Actual
	return fmt.Sprintf("v%d %s at %s pickup (%s, %s) area %s dropoff (%s, %s) area %s miles %s seconds %s fare %s %q %q passengers %s | v%d %s at %s fare %v tips %v %q",
		ride.SchemaVersion, ride.TripID, ride.PickupDatetime.UTC().Format(time.RFC3339Nano),
		f(ride.PickupLatitude), f(ride.PickupLongitude), i(ride.PickupCommunityArea),
		f(ride.DropoffLatitude), f(ride.DropoffLongitude), i(ride.DropoffCommunityArea),
		f(ride.TripDistance), f(ride.TripSeconds), f(ride.FareAmount), ride.PaymentType, ride.Company, i(ride.PassengerCount),
		a.SchemaVersion, a.TripID, a.DropoffDatetime.UTC().Format(time.RFC3339Nano), a.Fare, a.Tips, a.PaymentType)
}

func TestRoundTripOfTheSample(t *testing.T) {
	rows := sampleRows(t)
	// The sample has what the round trip must keep: missing coordinates,
	// durations and community areas.
	var noPickupCoords, noDropoffCoords, noSeconds, noPickupArea, noDropoffArea int
	for i := range rows {
		r := &rows[i].Ride
		if r.PickupLatitude == nil {
			noPickupCoords++
		}
		if r.DropoffLatitude == nil {
			noDropoffCoords++
		}
		if r.TripSeconds == nil {
			noSeconds++
		}
		if r.PickupCommunityArea == nil {
			noPickupArea++
		}
		if r.DropoffCommunityArea == nil {
			noDropoffArea++
		}
	}
	if noPickupCoords == 0 || noDropoffCoords == 0 || noSeconds == 0 || noPickupArea == 0 || noDropoffArea == 0 {
		t.Fatalf("the sample lacks nulls to test: %d %d %d %d %d", noPickupCoords, noDropoffCoords, noSeconds, noPickupArea, noDropoffArea)
	}

	b, err := dataset.Encode(rows)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dataset.Read(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("%d rows read, %d written", len(got), len(rows))
	}
	for i := range rows {
		want, have := describe(&rows[i]), describe(&got[i])
		if want != have {
			t.Fatalf("row %d changed in the round trip:\nwrote %s\nread  %s", i, want, have)
		}
		// Same instants, read back as UTC.
		if !got[i].Ride.PickupDatetime.Equal(rows[i].Ride.PickupDatetime) || got[i].Ride.PickupDatetime.Location() != time.UTC {
			t.Fatalf("row %d: pickup %v, wrote %v", i, got[i].Ride.PickupDatetime, rows[i].Ride.PickupDatetime)
		}
		if !got[i].Actual.DropoffDatetime.Equal(rows[i].Actual.DropoffDatetime) {
			t.Fatalf("row %d: dropoff %v, wrote %v", i, got[i].Actual.DropoffDatetime, rows[i].Actual.DropoffDatetime)
		}
		// What is read is valid as published.
		if err := got[i].Ride.Validate(); err != nil {
			t.Fatalf("row %d: ride read back is invalid: %v", i, err)
		}
		if err := got[i].Actual.Validate(); err != nil {
			t.Fatalf("row %d: actual read back is invalid: %v", i, err)
		}
	}
}

func TestRoundTripOfEdgeRows(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	n := func(v int) *int { return &v }
	pickup := time.Date(2015, 11, 1, 6, 30, 0, 123456000, time.UTC) // microseconds survive
	rows := []dataset.Row{
		{
			Ride: contracts.RawRide{SchemaVersion: 1, TripID: "all-null", PickupDatetime: pickup,
				TripDistance: f(0), FareAmount: f(0)},
			Actual: contracts.Actual{SchemaVersion: 1, TripID: "all-null", DropoffDatetime: pickup},
		},
		{
			Ride: contracts.RawRide{SchemaVersion: 1, TripID: "full", PickupDatetime: pickup.Add(time.Hour),
				PickupLatitude: f(41.881), PickupLongitude: f(-87.6298), DropoffLatitude: f(41.9742), DropoffLongitude: f(-87.9073),
				TripDistance: f(17.3), TripSeconds: f(1920), FareAmount: f(40.25), PaymentType: "Credit Card",
				Company: "Taxi Affiliation Services", PickupCommunityArea: n(32), DropoffCommunityArea: n(76)},
			Actual: contracts.Actual{SchemaVersion: 1, TripID: "full", DropoffDatetime: pickup.Add(time.Hour + 1920*time.Second),
				Fare: 40.25, Tips: 8, PaymentType: "Credit Card"},
		},
		{
			Ride: contracts.RawRide{SchemaVersion: 1, TripID: "unicode ✓", PickupDatetime: time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
				DropoffLatitude: f(41.9), DropoffLongitude: f(-87.7), TripDistance: f(0.1), TripSeconds: f(0), FareAmount: f(3.25),
				PaymentType: "Cash", Company: "Ünïcode Cab", DropoffCommunityArea: n(1)},
			Actual: contracts.Actual{SchemaVersion: 1, TripID: "unicode ✓", DropoffDatetime: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
				Fare: 3.25, PaymentType: "Cash"},
		},
	}
	b, err := dataset.Encode(rows)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dataset.Read(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("%d rows read, %d written", len(got), len(rows))
	}
	for i := range rows {
		if want, have := describe(&rows[i]), describe(&got[i]); want != have {
			t.Errorf("row %d:\nwrote %s\nread  %s", i, want, have)
		}
	}

	// No rows is a valid, empty table.
	b, err = dataset.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dataset.Read(context.Background(), b); err != nil || len(got) != 0 {
		t.Errorf("empty table read as %d rows, %v", len(got), err)
	}
}

func TestWriteToWriter(t *testing.T) {
	rows := sampleRows(t)[:50]
	var buf bytes.Buffer
	if err := dataset.Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	b, err := dataset.Encode(rows)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Error("Write and Encode give different bytes for the same rows")
	}
	if !bytes.HasPrefix(b, []byte("PAR1")) || !bytes.HasSuffix(b, []byte("PAR1")) {
		t.Error("not a Parquet file")
	}
}

// table writes a Parquet file of one row over fields: plausible values, or
// null where null says so.
func table(t *testing.T, fields []arrow.Field, null func(name string) bool) []byte {
	t.Helper()
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, fl := range fields {
		if null != nil && null(fl.Name) {
			b.Field(i).AppendNull()
			continue
		}
		switch fb := b.Field(i).(type) {
		case *array.StringBuilder:
			fb.Append("x")
		case *array.TimestampBuilder:
			fb.Append(arrow.Timestamp(time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()))
		case *array.Float64Builder:
			fb.Append(1.5)
		case *array.Int32Builder:
			fb.Append(8)
		case *array.Int64Builder:
			fb.Append(8)
		default:
			t.Fatalf("no value for %s", fl.Type)
		}
	}
	rec := b.NewRecord()
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, nil, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fieldsWithout(name string) []arrow.Field {
	var fs []arrow.Field
	for _, f := range dataset.Schema().Fields() {
		if f.Name != name {
			fs = append(fs, f)
		}
	}
	return fs
}

func TestReadAcceptsOurTablesAndExtraColumns(t *testing.T) {
	fs := dataset.Schema().Fields()
	got, err := dataset.Read(context.Background(), table(t, fs, nil))
	if err != nil || len(got) != 1 {
		t.Fatalf("a table of the schema: %d rows, %v", len(got), err)
	}
	if got[0].Ride.TripID != "x" || got[0].Actual.TripID != "x" || *got[0].Ride.TripDistance != 1.5 || *got[0].Ride.PickupCommunityArea != 8 {
		t.Errorf("read %s", describe(&got[0]))
	}
	// Columns are found by name: another order and extra columns are fine.
	extra := append([]arrow.Field{{Name: "weather", Type: arrow.BinaryTypes.String, Nullable: true}}, fs...)
	extra[1], extra[len(extra)-1] = extra[len(extra)-1], extra[1]
	if got, err := dataset.Read(context.Background(), table(t, extra, nil)); err != nil || len(got) != 1 || got[0].Ride.TripID != "x" {
		t.Errorf("a table with an extra column in another order: %d rows, %v", len(got), err)
	}
}

func TestReadErrors(t *testing.T) {
	good, err := dataset.Encode(sampleRows(t)[:10])
	if err != nil {
		t.Fatal(err)
	}
	wrongType := dataset.Schema().Fields()
	for i := range wrongType {
		if wrongType[i].Name == dataset.ColPickupArea {
			wrongType[i].Type = arrow.PrimitiveTypes.Int64
		}
	}
	nullable := dataset.Schema().Fields()
	for i := range nullable {
		nullable[i].Nullable = true
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"missing column", table(t, fieldsWithout(dataset.ColTips), nil), `column "tips" is missing`},
		{"missing time column", table(t, fieldsWithout(dataset.ColEventTimestamp), nil), `column "event_timestamp" is missing`},
		{"wrong type", table(t, wrongType, nil), `column "pickup_community_area" is int64`},
		{"null in a required column", table(t, nullable, func(n string) bool { return n == dataset.ColFare }), `column "fare" has 1 nulls`},
		{"garbage", []byte("this is not a parquet file, just some bytes that go on for a while"), "read parquet"},
		{"empty", nil, "read parquet"},
		{"truncated", good[:len(good)/2], "read parquet"},
		{"CSV", []byte("trip_id,fare\nt1,5\n"), "read parquet"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, err := dataset.Read(context.Background(), c.data)
			if err == nil {
				t.Fatalf("read %d rows", len(rows))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to say %q", err, c.want)
			}
		})
	}
}
