package s3server

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// apiError is an S3 error response.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// writeError writes e as S3 does. HEAD responses have no body, so the code
// and message also go in the headers minio-go reads in that case.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	id := fmt.Sprintf("%016X", s.requestID.Add(1))
	h := w.Header()
	h.Set("x-amz-request-id", id)
	h.Set("x-minio-error-code", e.Code)
	h.Set("x-minio-error-desc", strconv.Quote(e.Message))
	h.Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return
	}
	body := struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string   `xml:"Code"`
		Message   string   `xml:"Message"`
		Resource  string   `xml:"Resource"`
		RequestID string   `xml:"RequestId"`
	}{Code: e.Code, Message: e.Message, Resource: r.URL.Path, RequestID: id}
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(body)
}

// routes puts authentication, body decoding, request checks and
// conditional writes in front of gofakes3.
func (s *Server) routes(fake http.Handler) http.Handler {
	inner := s.guard(s.writes(fake))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			s.log.Debug("s3 request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery, "status", rec.status)
		}()
		if r.URL.Path == "/minio/health/live" || r.URL.Path == "/minio/health/ready" {
			rec.WriteHeader(http.StatusOK)
			return
		}
		sig, aerr := s.authenticate(r)
		if aerr != nil {
			s.log.Warn("s3 request refused", "method", r.Method, "path", r.URL.Path, "code", aerr.Code, "reason", aerr.Message)
			s.writeError(rec, r, aerr)
			return
		}
		check, aerr := s.prepareBody(r, sig)
		if aerr != nil {
			s.writeError(rec, r, aerr)
			return
		}
		if check == nil {
			inner.ServeHTTP(rec, r)
			return
		}
		// The body is verified as it is read; hold the response back until
		// the handler is done, to replace it if verification failed.
		buf := newBufferedResponse()
		inner.ServeHTTP(buf, r)
		if check.err != nil {
			s.log.Warn("s3 request body refused", "method", r.Method, "path", r.URL.Path, "code", check.err.Code, "reason", check.err.Message)
			s.writeError(rec, r, check.err)
			return
		}
		buf.flushTo(rec)
	})
}

// unsupported are subresources gofakes3 does not implement; it would treat
// them as plain object or bucket requests (a PUT ?tagging would overwrite
// the object), so they are refused.
var unsupported = []string{
	"accelerate", "acl", "analytics", "attributes", "cors", "encryption", "intelligent-tiering",
	"inventory", "legal-hold", "lifecycle", "logging", "metrics", "notification", "object-lock",
	"ownershipControls", "policy", "policyStatus", "publicAccessBlock", "replication",
	"requestPayment", "restore", "retention", "select", "tagging", "torrent", "website",
}

// guard refuses requests gofakes3 would mishandle: unsupported subresources
// and keys a directory cannot hold faithfully.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for _, sub := range unsupported {
			if q.Has(sub) {
				s.writeError(w, r, errorf(http.StatusNotImplemented, "NotImplemented",
					"this server does not implement the ?%s subresource", sub))
				return
			}
		}
		if _, key := splitPath(r.URL.Path); key != "" {
			if err := validateKey(key); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// maxKeyLen keeps the backend's metadata file name (the key with "/"
// replaced, plus a 33-byte hash suffix) within the usual 255-byte limit.
const maxKeyLen = 222

// validateKey refuses keys that would map to a different file than their
// own (empty, "." and ".." segments) or that cannot be stored.
func validateKey(key string) *apiError {
	bad := func(why string) *apiError {
		return errorf(http.StatusBadRequest, "XMinioInvalidObjectName", "object name %q is not supported: %s", key, why)
	}
	if len(key) > maxKeyLen {
		return errorf(http.StatusBadRequest, "KeyTooLongError", "object name is %d bytes; this server stores at most %d", len(key), maxKeyLen)
	}
	if !utf8.ValidString(key) {
		return bad("not valid UTF-8")
	}
	if strings.ContainsRune(key, 0) {
		return bad("contains NUL")
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return bad(`empty path segment (leading, trailing or double "/")`)
		case ".", "..":
			return bad(`"." or ".." path segment`)
		}
	}
	return nil
}

// splitPath splits a path-style request path into bucket and key.
func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Flush lets streamed GET responses through.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// bufferedResponse holds a whole response. It is used only for requests
// that upload (their responses are small).
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBufferedResponse() *bufferedResponse {
	return &bufferedResponse{header: http.Header{}}
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) flushTo(w http.ResponseWriter) {
	maps.Copy(w.Header(), b.header)
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}
