package s3server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	algorithmV4    = "AWS4-HMAC-SHA256"
	amzDateFormat  = "20060102T150405Z"
	scopeDate      = "20060102"
	maxClockSkew   = 15 * time.Minute
	maxPresignLife = 7 * 24 * time.Hour

	unsignedPayload          = "UNSIGNED-PAYLOAD"
	streamingPayload         = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingPayloadTrailer  = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	emptySHA256              = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// signature is a verified SigV4 request signature, kept to verify the
// chunk signatures of a streaming upload.
type signature struct {
	amzDate    string // as sent, e.g. 20260102T150405Z
	scope      string // date/region/service/aws4_request
	signingKey []byte
	seed       string // the request's signature
}

// authenticate verifies the request's SigV4 signature, from the
// Authorization header or a presigned URL.
func (s *Server) authenticate(r *http.Request) (*signature, *apiError) {
	now := s.now()
	auth := r.Header.Get("Authorization")
	q := r.URL.Query()
	switch {
	case strings.HasPrefix(auth, algorithmV4+" "):
		return s.verifyHeaderV4(r, auth, now)
	case q.Get("X-Amz-Algorithm") != "":
		return s.verifyPresignedV4(r, now)
	case strings.HasPrefix(auth, "AWS "):
		ak, _, _ := strings.Cut(strings.TrimPrefix(auth, "AWS "), ":")
		return nil, s.v2Refused(ak)
	case q.Get("AWSAccessKeyId") != "":
		return nil, s.v2Refused(q.Get("AWSAccessKeyId"))
	case auth != "":
		return nil, errorf(http.StatusBadRequest, "AuthorizationHeaderMalformed", "unsupported Authorization scheme")
	default:
		return nil, errorf(http.StatusForbidden, "AccessDenied", "anonymous requests are not allowed; sign requests with the configured access key")
	}
}

func (s *Server) v2Refused(accessKey string) *apiError {
	if e := s.checkAccessKey(accessKey); e != nil {
		return e
	}
	return errorf(http.StatusBadRequest, "InvalidRequest", "signature version 2 is not supported; use AWS Signature Version 4")
}

func (s *Server) checkAccessKey(ak string) *apiError {
	if ak != s.accessKey {
		return errorf(http.StatusForbidden, "InvalidAccessKeyId",
			"the access key ID %q is not the one this server is configured with", ak)
	}
	return nil
}

// credential parses "<access key>/<date>/<region>/<service>/aws4_request".
func (s *Server) credential(cred string) (scope string, date string, e *apiError) {
	parts := strings.Split(cred, "/")
	if len(parts) < 5 {
		return "", "", errorf(http.StatusBadRequest, "AuthorizationHeaderMalformed", "malformed credential %q", cred)
	}
	ak := strings.Join(parts[:len(parts)-4], "/")
	if e := s.checkAccessKey(ak); e != nil {
		return "", "", e
	}
	sc := parts[len(parts)-4:]
	if sc[2] != "s3" || sc[3] != "aws4_request" {
		return "", "", errorf(http.StatusBadRequest, "AuthorizationHeaderMalformed", "credential scope %q is not for s3", strings.Join(sc, "/"))
	}
	return strings.Join(sc, "/"), sc[0], nil
}

func (s *Server) verifyHeaderV4(r *http.Request, auth string, now time.Time) (*signature, *apiError) {
	var cred, signed, sig string
	for f := range strings.SplitSeq(strings.TrimPrefix(auth, algorithmV4), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	if cred == "" || signed == "" || sig == "" {
		return nil, errorf(http.StatusBadRequest, "AuthorizationHeaderMalformed", "the Authorization header lacks Credential, SignedHeaders or Signature")
	}
	scope, date, e := s.credential(cred)
	if e != nil {
		return nil, e
	}
	amzDate := r.Header.Get("X-Amz-Date")
	var t time.Time
	var err error
	if amzDate != "" {
		t, err = time.Parse(amzDateFormat, amzDate)
	} else {
		// Without X-Amz-Date the Date header is signed; the string to sign
		// still carries the ISO 8601 form.
		t, err = http.ParseTime(r.Header.Get("Date"))
		amzDate = t.UTC().Format(amzDateFormat)
	}
	if err != nil {
		return nil, errorf(http.StatusForbidden, "AccessDenied", "missing or malformed X-Amz-Date")
	}
	if t.UTC().Format(scopeDate) != date {
		return nil, errorf(http.StatusForbidden, "SignatureDoesNotMatch", "the credential date %s is not the request date %s", date, amzDate)
	}
	if d := now.Sub(t); d > maxClockSkew || d < -maxClockSkew {
		return nil, errorf(http.StatusForbidden, "RequestTimeTooSkewed",
			"the request time %s differs from the server time %s by more than %s",
			t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), maxClockSkew)
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		return nil, errorf(http.StatusBadRequest, "InvalidRequest", "missing x-amz-content-sha256 header")
	}
	return s.checkSignature(r, r.URL.Query(), signed, payload, amzDate, scope, sig)
}

func (s *Server) verifyPresignedV4(r *http.Request, now time.Time) (*signature, *apiError) {
	q := r.URL.Query()
	if a := q.Get("X-Amz-Algorithm"); a != algorithmV4 {
		return nil, errorf(http.StatusBadRequest, "AuthorizationQueryParametersError", "unsupported X-Amz-Algorithm %q", a)
	}
	scope, date, e := s.credential(q.Get("X-Amz-Credential"))
	if e != nil {
		return nil, e
	}
	amzDate := q.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil || t.Format(scopeDate) != date {
		return nil, errorf(http.StatusBadRequest, "AuthorizationQueryParametersError", "missing or malformed X-Amz-Date")
	}
	secs, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || secs < 0 || time.Duration(secs)*time.Second > maxPresignLife {
		return nil, errorf(http.StatusBadRequest, "AuthorizationQueryParametersError", "X-Amz-Expires must be between 0 and %d seconds", int(maxPresignLife/time.Second))
	}
	if t.Sub(now) > maxClockSkew {
		return nil, errorf(http.StatusForbidden, "AccessDenied", "request is not valid yet")
	}
	if now.After(t.Add(time.Duration(secs) * time.Second)) {
		return nil, errorf(http.StatusForbidden, "AccessDenied", "request has expired")
	}
	sig := q.Get("X-Amz-Signature")
	signed := q.Get("X-Amz-SignedHeaders")
	if sig == "" || signed == "" {
		return nil, errorf(http.StatusBadRequest, "AuthorizationQueryParametersError", "missing X-Amz-Signature or X-Amz-SignedHeaders")
	}
	q.Del("X-Amz-Signature")
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = unsignedPayload
	}
	return s.checkSignature(r, q, signed, payload, amzDate, scope, sig)
}

// checkSignature computes the request's SigV4 signature and compares it
// with the one sent.
func (s *Server) checkSignature(r *http.Request, query map[string][]string, signedHeaders, payload, amzDate, scope, sig string) (*signature, *apiError) {
	names := strings.Split(signedHeaders, ";")
	if !slices.Contains(names, "host") {
		return nil, errorf(http.StatusBadRequest, "AuthorizationHeaderMalformed", "the host header must be signed")
	}
	var canon strings.Builder
	canon.WriteString(r.Method)
	canon.WriteByte('\n')
	canon.WriteString(encodePath(r.URL.Path))
	canon.WriteByte('\n')
	canon.WriteString(canonicalQuery(query))
	canon.WriteByte('\n')
	for _, name := range names {
		canon.WriteString(name)
		canon.WriteByte(':')
		canon.WriteString(headerValue(r, name))
		canon.WriteByte('\n')
	}
	canon.WriteByte('\n')
	canon.WriteString(signedHeaders)
	canon.WriteByte('\n')
	canon.WriteString(payload)

	key := signingKey(s.secretKey, scope)
	want := hmacHex(key, algorithmV4+"\n"+amzDate+"\n"+scope+"\n"+sha256Hex([]byte(canon.String())))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return nil, errorf(http.StatusForbidden, "SignatureDoesNotMatch",
			"the request signature does not match the one computed with the configured secret key")
	}
	return &signature{amzDate: amzDate, scope: scope, signingKey: key, seed: sig}, nil
}

// headerValue is a header's canonical value: values joined by commas, with
// runs of spaces collapsed.
func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(r.ContentLength, 10)
	case "transfer-encoding":
		return strings.Join(r.TransferEncoding, ",")
	}
	vals := r.Header.Values(name)
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ",")
}

// canonicalQuery is the query sorted by name with names and values
// URI-encoded, as SigV4 (and minio-go) compute it.
func canonicalQuery(q map[string][]string) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(uriEncode(k, false))
			b.WriteByte('=')
			b.WriteString(uriEncode(v, false))
		}
	}
	return b.String()
}

func encodePath(p string) string {
	if p == "" {
		return "/"
	}
	return uriEncode(p, true)
}

// uriEncode percent-encodes every byte but the unreserved characters (and
// "/" in paths).
func uriEncode(s string, path bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || (path && c == '/') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func signingKey(secret, scope string) []byte {
	k := []byte("AWS4" + secret)
	for part := range strings.SplitSeq(scope, "/") {
		k = hmacSum(k, part)
	}
	return k
}

func hmacSum(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hmacHex(key []byte, data string) string { return hex.EncodeToString(hmacSum(key, data)) }

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
