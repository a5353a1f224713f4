package s3server

import (
	"bytes"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/johannesboyne/gofakes3"
)

// maxDeleteBody bounds a multi-object delete request (1000 keys).
const maxDeleteBody = 4 << 20

// writes serialises every write of a key (PUT, copy, multipart completion,
// DELETE, multi-object delete) on a per-key lock, and checks If-Match and
// If-None-Match under that lock, so that a conditional write is one atomic
// step: of two writers with the same condition exactly one succeeds.
// gofakes3 is handed the request with the condition headers removed.
func (s *Server) writes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, key := splitPath(r.URL.Path)
		q := r.URL.Query()
		switch {
		case bucket == "":
			next.ServeHTTP(w, r)
		case key != "" && r.Method == http.MethodPut && !q.Has("uploadId"),
			key != "" && r.Method == http.MethodDelete && !q.Has("uploadId"):
			s.lockedWrite(w, r, bucket, key, next, false)
		case key != "" && r.Method == http.MethodPost && q.Has("uploadId"):
			s.lockedWrite(w, r, bucket, key, next, true)
		case key != "" && r.Method == http.MethodPost && q.Has("uploads"):
			// Fail early rather than after the parts are uploaded; the check
			// that counts is the one at completion.
			if e := s.preconditions(r, bucket, key); e != nil {
				s.writeError(w, r, e)
				return
			}
			dropConditions(r)
			next.ServeHTTP(w, r)
		case key == "" && r.Method == http.MethodPost && q.Has("delete"):
			s.deleteMulti(w, r, bucket, next)
		case key != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("If-Match") != "":
			// gofakes3 ignores If-Match on reads. minio-go relies on it to
			// notice an object changing between the requests of one read.
			// The check is made on the ETag of the object actually served.
			mw := &ifMatchWriter{ResponseWriter: w, s: s, r: r, cond: r.Header.Get("If-Match")}
			next.ServeHTTP(mw, r)
			mw.decide(http.StatusOK)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (s *Server) lockedWrite(w http.ResponseWriter, r *http.Request, bucket, key string, next http.Handler, completion bool) {
	unlock := s.locks.lock(bucket + "/" + key)
	defer unlock()
	if e := s.preconditions(r, bucket, key); e != nil {
		s.writeError(w, r, e)
		return
	}
	dropConditions(r)
	if !completion {
		next.ServeHTTP(w, r)
		return
	}
	// gofakes3 answers a completion with a multipart-style ETag while it
	// stores (and serves on HEAD and GET) the MD5 of the whole object; the
	// answer is rewritten so that an ETag a client got from a write can be
	// used in If-Match.
	buf := newBufferedResponse()
	next.ServeHTTP(buf, r)
	if buf.status == http.StatusOK {
		var res gofakes3.CompleteMultipartUploadResult
		if xml.Unmarshal(buf.body.Bytes(), &res) == nil && res.Key != "" {
			if obj, err := s.backend.HeadObject(bucket, key); err == nil {
				obj.Contents.Close()
				res.ETag = `"` + hex.EncodeToString(obj.Hash) + `"`
				if out, err := xml.MarshalIndent(res, "", "  "); err == nil {
					buf.body.Reset()
					buf.body.WriteString(xml.Header)
					buf.body.Write(out)
					buf.header.Del("Content-Length")
				}
			}
		}
	}
	buf.flushTo(w)
}

// deleteMulti locks every key named in a multi-object delete.
func (s *Server) deleteMulti(w http.ResponseWriter, r *http.Request, bucket string, next http.Handler) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDeleteBody+1))
	if err != nil {
		s.writeError(w, r, errorf(http.StatusBadRequest, "IncompleteBody", "reading the body: %v", err))
		return
	}
	if len(body) > maxDeleteBody {
		s.writeError(w, r, errorf(http.StatusBadRequest, "MalformedXML", "delete request larger than %d bytes", maxDeleteBody))
		return
	}
	var req gofakes3.DeleteRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		s.writeError(w, r, errorf(http.StatusBadRequest, "MalformedXML", "%v", err))
		return
	}
	keys := make([]string, 0, len(req.Objects))
	for _, o := range req.Objects {
		if e := validateKey(o.Key); e != nil {
			s.writeError(w, r, e)
			return
		}
		keys = append(keys, bucket+"/"+o.Key)
	}
	unlock := s.locks.lock(keys...)
	defer unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	next.ServeHTTP(w, r)
}

func dropConditions(r *http.Request) {
	r.Header.Del("If-Match")
	r.Header.Del("If-None-Match")
}

// preconditions checks If-Match and If-None-Match against the object's
// current ETag. If-Match fails when the object does not exist; "*" matches
// any existing object.
func (s *Server) preconditions(r *http.Request, bucket, key string) *apiError {
	ifMatch, ifNoneMatch := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	if ifMatch == "" && ifNoneMatch == "" {
		return nil
	}
	var etag string
	exists := true
	obj, err := s.backend.HeadObject(bucket, key)
	switch {
	case err == nil:
		obj.Contents.Close()
		etag = hex.EncodeToString(obj.Hash)
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey):
		exists = false
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket):
		return errorf(http.StatusNotFound, "NoSuchBucket", "bucket %q does not exist", bucket)
	default:
		s.log.Error("check write precondition", "bucket", bucket, "key", key, "err", err)
		return errorf(http.StatusInternalServerError, "InternalError", "checking the precondition failed")
	}
	if ifMatch != "" {
		if !exists {
			return errorf(http.StatusPreconditionFailed, "PreconditionFailed",
				"If-Match: %s: object %s/%s does not exist", ifMatch, bucket, key)
		}
		if !etagMatches(ifMatch, etag) {
			return errorf(http.StatusPreconditionFailed, "PreconditionFailed",
				"If-Match: %s: object %s/%s has ETag %q", ifMatch, bucket, key, etag)
		}
	}
	if ifNoneMatch != "" && exists && etagMatches(ifNoneMatch, etag) {
		return errorf(http.StatusPreconditionFailed, "PreconditionFailed",
			"If-None-Match: %s: object %s/%s exists with ETag %q", ifNoneMatch, bucket, key, etag)
	}
	return nil
}

// etagMatches reports whether a condition ("*" or a list of ETags, quoted
// or not, weak or not) names etag.
func etagMatches(cond, etag string) bool {
	for c := range strings.SplitSeq(cond, ",") {
		c = strings.TrimSpace(c)
		if c == "*" {
			return true
		}
		c = strings.Trim(strings.TrimPrefix(c, "W/"), `"`)
		if strings.EqualFold(c, etag) {
			return true
		}
	}
	return false
}

// keyLocks is a set of mutexes by key, each kept while in use.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int
}

// lock locks the keys (in sorted order, so that two requests naming the
// same keys cannot deadlock) and returns the function unlocking them.
func (k *keyLocks) lock(keys ...string) (unlock func()) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	held := make([]*keyLock, len(keys))
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	for i, key := range keys {
		l := k.locks[key]
		if l == nil {
			l = &keyLock{}
			k.locks[key] = l
		}
		l.refs++
		held[i] = l
	}
	k.mu.Unlock()
	for _, l := range held {
		l.Lock()
	}
	return func() {
		for _, l := range held {
			l.Unlock()
		}
		k.mu.Lock()
		for i, key := range keys {
			if held[i].refs--; held[i].refs == 0 {
				delete(k.locks, key)
			}
		}
		k.mu.Unlock()
	}
}

// ifMatchWriter turns a successful read into 412 PreconditionFailed when
// the ETag of what is served does not match If-Match.
type ifMatchWriter struct {
	http.ResponseWriter
	s       *Server
	r       *http.Request
	cond    string
	decided bool
	refused bool
}

func (w *ifMatchWriter) decide(status int) {
	if w.decided {
		return
	}
	w.decided = true
	if status/100 != 2 {
		return
	}
	etag := strings.Trim(w.Header().Get("ETag"), `"`)
	if etag == "" || etagMatches(w.cond, etag) {
		return
	}
	w.refused = true
	clear(w.Header())
	w.s.writeError(w.ResponseWriter, w.r, errorf(http.StatusPreconditionFailed, "PreconditionFailed",
		"If-Match: %s: object %s has ETag %q", w.cond, w.r.URL.Path, etag))
}

func (w *ifMatchWriter) WriteHeader(code int) {
	w.decide(code)
	if !w.refused {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *ifMatchWriter) Write(p []byte) (int, error) {
	w.decide(http.StatusOK)
	if w.refused {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}
