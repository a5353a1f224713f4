package contracts

import "encoding/binary"

// The Confluent wire format frames a value as the magic byte 0, the schema's
// registry id as 4 bytes big-endian, then the payload (here JSON). A JSON
// document never starts with byte 0, so framed and plain values can share a
// topic and Decode tells them apart by their first byte.
const (
	WireMagic      byte = 0
	WireHeaderSize      = 5
)

// AppendWireHeader appends the wire-format header of schema id to dst.
func AppendWireHeader(dst []byte, id uint32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, WireMagic), id)
}

// Payload returns the JSON of a record value: b itself when it is plain
// JSON, what follows the 5-byte header when it is framed. A value that
// starts with the magic byte but is shorter than the header is invalid.
func Payload(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0] != WireMagic {
		return b, nil
	}
	if len(b) < WireHeaderSize {
		return nil, invalid("", "wire format: %d bytes, shorter than the %d-byte header", len(b), WireHeaderSize)
	}
	return b[WireHeaderSize:], nil
}

// WireSchemaID returns the schema id of a framed value; ok is false for a
// plain (or truncated) one.
func WireSchemaID(b []byte) (id uint32, ok bool) {
	if len(b) < WireHeaderSize || b[0] != WireMagic {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[1:WireHeaderSize]), true
}
