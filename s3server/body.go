package s3server

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// bodyCheck records why a request body failed verification while it was
// being read.
type bodyCheck struct {
	err *apiError
}

// fail records e and returns it as gofakes3 error code, which gofakes3
// passes on rather than logging as an internal error; the response is
// replaced with e anyway.
func (c *bodyCheck) fail(e *apiError) error {
	if c.err == nil {
		c.err = e
	}
	return gofakes3.ErrorCode(c.err.Code)
}

// transportHeaders describe how a request was signed and sent, not the
// object; gofakes3 would store every X-Amz-* header with the object.
var transportHeaders = []string{
	"X-Amz-Date", "X-Amz-Content-Sha256", "X-Amz-Decoded-Content-Length", "X-Amz-Trailer",
	"X-Amz-Security-Token", "X-Amz-User-Agent", "X-Amz-Sdk-Checksum-Algorithm",
	"X-Amz-Checksum-Algorithm", "X-Amz-Checksum-Type", "X-Amz-Checksum-Crc32",
	"X-Amz-Checksum-Crc32c", "X-Amz-Checksum-Crc64nvme", "X-Amz-Checksum-Sha1",
	"X-Amz-Checksum-Sha256", "Authorization",
}

// prepareBody replaces the body of an authenticated request by one that is
// decoded (aws-chunked) and verified against its signature or declared
// SHA-256 as it is read, and removes the transport headers. It returns nil
// when there is nothing to verify.
func (s *Server) prepareBody(r *http.Request, sig *signature) (*bodyCheck, *apiError) {
	payload := r.Header.Get("X-Amz-Content-Sha256")
	defer func() {
		for _, h := range transportHeaders {
			r.Header.Del(h)
		}
		stripAwsChunked(r.Header)
	}()
	switch payload {
	case "", unsignedPayload:
		return nil, nil
	case streamingPayload, streamingPayloadTrailer, streamingUnsignedTrailer:
		n, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return nil, errorf(http.StatusLengthRequired, "MissingContentLength", "streaming upload without a valid x-amz-decoded-content-length")
		}
		check := &bodyCheck{}
		cr := &chunkedReader{
			in:       bufio.NewReader(r.Body),
			body:     r.Body,
			signed:   payload != streamingUnsignedTrailer,
			trailer:  payload != streamingPayload,
			want:     n,
			check:    check,
			chunkSum: sha256.New(),
		}
		if cr.signed {
			cr.sig = *sig
			cr.prev = sig.seed
		}
		if cr.trailer {
			cr.sum, cr.sumName = trailerChecksum(r.Header.Get("X-Amz-Trailer"))
		}
		r.Body = cr
		r.ContentLength = n
		r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
		return check, nil
	default:
		want, err := hex.DecodeString(payload)
		if err != nil || len(want) != sha256.Size {
			return nil, errorf(http.StatusBadRequest, "InvalidArgument", "x-amz-content-sha256 %q is neither a SHA-256 nor a known payload mode", payload)
		}
		if r.ContentLength == 0 {
			if payload != emptySHA256 {
				return nil, errorf(http.StatusBadRequest, "XAmzContentSHA256Mismatch", "the body is empty but x-amz-content-sha256 is not the SHA-256 of nothing")
			}
			return nil, nil
		}
		check := &bodyCheck{}
		r.Body = &digestReader{body: r.Body, h: sha256.New(), want: want, check: check}
		return check, nil
	}
}

// stripAwsChunked removes aws-chunked from Content-Encoding: it describes
// the request framing, not the stored object.
func stripAwsChunked(h http.Header) {
	ce := h.Get("Content-Encoding")
	if ce == "" {
		return
	}
	var keep []string
	for e := range strings.SplitSeq(ce, ",") {
		if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "aws-chunked") {
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 {
		h.Del("Content-Encoding")
	} else {
		h.Set("Content-Encoding", strings.Join(keep, ","))
	}
}

// trailerChecksum returns a hash for the checksum named by X-Amz-Trailer,
// if it is one this server verifies.
func trailerChecksum(names string) (hash.Hash, string) {
	for n := range strings.SplitSeq(names, ",") {
		switch n = strings.ToLower(strings.TrimSpace(n)); n {
		case "x-amz-checksum-crc32":
			return crc32.NewIEEE(), n
		case "x-amz-checksum-crc32c":
			return crc32.New(crc32.MakeTable(crc32.Castagnoli)), n
		case "x-amz-checksum-sha1":
			return sha1.New(), n
		case "x-amz-checksum-sha256":
			return sha256.New(), n
		}
	}
	return nil, ""
}

// digestReader checks the body against the SHA-256 it was signed with.
type digestReader struct {
	body  io.ReadCloser
	h     hash.Hash
	want  []byte
	check *bodyCheck
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.body.Read(p)
	d.h.Write(p[:n])
	if err == io.EOF && !hmac.Equal(d.h.Sum(nil), d.want) {
		return n, d.check.fail(errorf(http.StatusBadRequest, "XAmzContentSHA256Mismatch",
			"the body does not match its x-amz-content-sha256"))
	}
	return n, err
}

func (d *digestReader) Close() error { return d.body.Close() }

// maxChunkLine bounds a chunk header or trailer line.
const maxChunkLine = 4096

// chunkedReader decodes an aws-chunked body:
//
//	<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n
//	[<trailer name>:<value>\n ... [x-amz-trailer-signature:<sig>\r\n]]\r\n
//
// verifying each chunk's signature (chained from the request's), the
// trailer's signature, the decoded length and the trailing checksum.
type chunkedReader struct {
	in      *bufio.Reader
	body    io.Closer
	signed  bool
	trailer bool
	sig     signature
	prev    string // previous signature in the chain
	want    int64  // decoded length declared
	got     int64
	check   *bodyCheck

	left     int64 // bytes left in the current chunk
	chunkSig string
	chunkSum hash.Hash
	sum      hash.Hash // trailing checksum, if verified
	sumName  string
	done     bool
	err      error
}

func (c *chunkedReader) Close() error { return c.body.Close() }

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		if err := c.nextChunk(); err != nil {
			c.err = err
			return 0, err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.in.Read(p)
	c.chunkSum.Write(p[:n])
	if c.sum != nil {
		c.sum.Write(p[:n])
	}
	c.left -= int64(n)
	c.got += int64(n)
	if c.got > c.want {
		c.err = c.malformed("the body is longer than its x-amz-decoded-content-length")
		return n, c.err
	}
	if c.left == 0 {
		if err := c.endChunk(); err != nil {
			c.err = err
			return n, err
		}
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = c.check.fail(errorf(http.StatusBadRequest, "IncompleteBody", "reading the body: %v", err))
		return n, c.err
	}
	return n, nil
}

func (c *chunkedReader) malformed(why string) error {
	return c.check.fail(errorf(http.StatusBadRequest, "MalformedChunkedEncoding", "%s", why))
}

func (c *chunkedReader) badSignature(what string) error {
	return c.check.fail(errorf(http.StatusForbidden, "SignatureDoesNotMatch", "the %s signature does not match", what))
}

// line reads one line without its line ending; io.EOF only if nothing
// was left.
func (c *chunkedReader) line() (string, error) {
	var b []byte
	for {
		frag, err := c.in.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxChunkLine {
			return "", c.malformed("chunk header or trailer line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(b) > 0 {
			err = nil
		}
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}

func (c *chunkedReader) nextChunk() error {
	ln, err := c.line()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return c.check.fail(errorf(http.StatusBadRequest, "IncompleteBody", "the body ended before its last chunk"))
		}
		return c.malformed("reading a chunk header: " + err.Error())
	}
	sizeHex, ext, _ := strings.Cut(ln, ";")
	size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
	if err != nil || size < 0 {
		return c.malformed("bad chunk size " + strconv.Quote(sizeHex))
	}
	c.chunkSig = ""
	if c.signed {
		v, ok := strings.CutPrefix(ext, "chunk-signature=")
		if !ok || v == "" {
			return c.malformed("chunk without chunk-signature")
		}
		c.chunkSig = v
	}
	c.chunkSum.Reset()
	if size > 0 {
		c.left = size
		return nil
	}
	// The final, empty chunk.
	if err := c.verifyChunk(); err != nil {
		return err
	}
	if err := c.readTrailer(); err != nil {
		return err
	}
	if c.got != c.want {
		return c.check.fail(errorf(http.StatusBadRequest, "IncompleteBody",
			"the body has %d bytes, x-amz-decoded-content-length says %d", c.got, c.want))
	}
	c.done = true
	return nil
}

func (c *chunkedReader) endChunk() error {
	if err := c.verifyChunk(); err != nil {
		return err
	}
	ln, err := c.line()
	if err != nil || ln != "" {
		return c.malformed("chunk data not followed by CRLF")
	}
	return nil
}

func (c *chunkedReader) verifyChunk() error {
	if !c.signed {
		return nil
	}
	want := hmacHex(c.sig.signingKey, "AWS4-HMAC-SHA256-PAYLOAD\n"+c.sig.amzDate+"\n"+c.sig.scope+"\n"+
		c.prev+"\n"+emptySHA256+"\n"+hex.EncodeToString(c.chunkSum.Sum(nil)))
	if !hmac.Equal([]byte(want), []byte(c.chunkSig)) {
		return c.badSignature("chunk")
	}
	c.prev = c.chunkSig
	return nil
}

// readTrailer reads what follows the final chunk up to the end of the body.
func (c *chunkedReader) readTrailer() error {
	var signed strings.Builder
	var trailerSig, checksum string
	for {
		ln, err := c.line()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c.malformed("reading the trailer: " + err.Error())
		}
		if ln == "" {
			continue
		}
		if !c.trailer {
			return c.malformed("data after the final chunk")
		}
		name, value, ok := strings.Cut(ln, ":")
		if !ok {
			return c.malformed("bad trailer line")
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if name == "x-amz-trailer-signature" {
			trailerSig = value
			continue
		}
		signed.WriteString(name + ":" + value + "\n")
		if name == c.sumName {
			checksum = value
		}
	}
	if c.trailer && c.signed {
		want := hmacHex(c.sig.signingKey, "AWS4-HMAC-SHA256-TRAILER\n"+c.sig.amzDate+"\n"+c.sig.scope+"\n"+
			c.prev+"\n"+sha256Hex([]byte(signed.String())))
		if !hmac.Equal([]byte(want), []byte(trailerSig)) {
			return c.badSignature("trailer")
		}
	}
	if c.sum != nil && checksum != "" {
		if got := base64.StdEncoding.EncodeToString(c.sum.Sum(nil)); got != checksum {
			return c.check.fail(errorf(http.StatusBadRequest, "BadDigest",
				"the body's %s is %s, the trailer says %s", c.sumName, got, checksum))
		}
	}
	return nil
}
