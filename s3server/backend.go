package s3server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"
)

// Layout of the data directory. The afero multi-bucket backend keeps each
// object as a file under buckets/<bucket>/<key> and its metadata (MD5,
// headers) as JSON under metadata/<bucket>/; tmp/ holds files being written
// so that they can be renamed into place.
const (
	bucketsDir = "buckets"
	tmpDir     = "tmp"
)

// spoolInMemory is the largest body kept in memory before it is handed to
// the backend; larger bodies are spooled to a file under tmp/.
const spoolInMemory = 1 << 20

// backend is gofakes3's afero multi-bucket backend with these changes:
//
//   - A body is read completely (and its Content-MD5 or signature checked)
//     before the backend touches the object, so a failed upload leaves the
//     previous object intact, and the backend's global lock is not held while
//     a client is slow to send.
//   - Writes go to a temporary file that is synced and renamed into place
//     (see atomicFs), so readers and crashes never see half an object.
//   - Listing is done here: the backend's own delimiter listing reads the
//     directory named by the prefix, reporting NoSuchBucket when that
//     directory does not exist, listing empty directories as prefixes and
//     ignoring markers and max-keys.
//   - A key whose path collides with an existing object or directory ("a"
//     and "a/b") is refused with a clear error rather than an internal one.
type backend struct {
	*s3afero.MultiBucketBackend
	// root is the data directory, with atomic writes.
	root afero.Fs
	// raw is the data directory, for spool files.
	raw afero.Fs
}

func newBackend(dir string) (*backend, error) {
	raw := afero.NewBasePathFs(afero.NewOsFs(), dir)
	// Files left in tmp/ by a crash are incomplete writes.
	if err := raw.RemoveAll(tmpDir); err != nil {
		return nil, fmt.Errorf("clean %s: %w", filepath.Join(dir, tmpDir), err)
	}
	if err := raw.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Join(dir, tmpDir), err)
	}
	root := &atomicFs{Fs: raw}
	mb, err := s3afero.MultiBucket(root)
	if err != nil {
		return nil, fmt.Errorf("open backend in %s: %w", dir, err)
	}
	return &backend{MultiBucketBackend: mb, root: root, raw: raw}, nil
}

// PutObject stores an object; see backend.
func (b *backend) PutObject(bucket, key string, meta map[string]string, input io.Reader,
	size int64, conditions *gofakes3.PutConditions,
) (gofakes3.PutObjectResult, error) {
	if err := b.checkKeyPath(bucket, key); err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	body, n, cleanup, err := b.spool(input, size)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	defer cleanup()
	if n != size {
		return gofakes3.PutObjectResult{}, gofakes3.ErrIncompleteBody
	}
	return b.MultiBucketBackend.PutObject(bucket, key, meta, body, n, conditions)
}

// CopyObject copies through PutObject above rather than the embedded
// backend's, so that the destination is checked and written atomically.
func (b *backend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(b, srcBucket, srcKey, dstBucket, dstKey, meta)
}

// DeleteObject deletes an object. A key naming a directory (a prefix of
// other keys) is no object, and deleting a missing object succeeds in S3;
// the embedded backend would fail trying to remove the directory.
func (b *backend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	if fi, err := b.root.Stat(filepath.FromSlash(path.Join(bucketsDir, bucket, key))); err == nil && fi.IsDir() {
		exists, err := b.BucketExists(bucket)
		if err != nil {
			return gofakes3.ObjectDeleteResult{}, err
		}
		if !exists {
			return gofakes3.ObjectDeleteResult{}, gofakes3.BucketNotFound(bucket)
		}
		return gofakes3.ObjectDeleteResult{}, nil
	}
	return b.MultiBucketBackend.DeleteObject(bucket, key)
}

// DeleteMulti deletes objects one by one through DeleteObject.
func (b *backend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	var res gofakes3.MultiDeleteResult
	for _, k := range keys {
		if _, err := b.DeleteObject(bucket, k); err != nil {
			if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket) {
				return res, err
			}
			res.Error = append(res.Error, gofakes3.ErrorResult{Code: gofakes3.ErrInternal, Message: err.Error(), Key: k})
			continue
		}
		res.Deleted = append(res.Deleted, gofakes3.ObjectID{Key: k})
	}
	return res, nil
}

// spool reads input to its end, into memory or a temporary file, and
// returns a reader over what was read.
func (b *backend) spool(input io.Reader, size int64) (io.Reader, int64, func(), error) {
	if br, ok := input.(*bytes.Reader); ok { // assembled multipart uploads
		return br, br.Size(), func() {}, nil
	}
	if size <= spoolInMemory {
		data, err := io.ReadAll(input)
		if err != nil {
			return nil, 0, nil, err
		}
		return bytes.NewReader(data), int64(len(data)), func() {}, nil
	}
	f, err := afero.TempFile(b.raw, tmpDir, ".spool-*")
	if err != nil {
		return nil, 0, nil, err
	}
	cleanup := func() {
		f.Close()
		b.raw.Remove(f.Name())
	}
	n, err := io.Copy(f, input)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		return nil, 0, nil, err
	}
	return f, n, cleanup, nil
}

// checkKeyPath refuses a key whose file would have to be a directory, or
// whose parent directories would have to be files.
func (b *backend) checkKeyPath(bucket, key string) error {
	p := path.Join(bucketsDir, bucket, key)
	if fi, err := b.root.Stat(filepath.FromSlash(p)); err == nil && fi.IsDir() {
		return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument,
			"key %q cannot be stored: other keys start with %q", key, key+"/")
	}
	for dir := path.Dir(key); dir != "." && dir != "/"; dir = path.Dir(dir) {
		fi, err := b.root.Stat(filepath.FromSlash(path.Join(bucketsDir, bucket, dir)))
		if err == nil && !fi.IsDir() {
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument,
				"key %q cannot be stored: key %q exists and a key cannot be both an object and a prefix of others", key, dir)
		}
	}
	return nil
}

// ListBucket lists the keys under prefix in key order, grouping by the
// delimiter and honouring the marker and max-keys.
func (b *backend) ListBucket(bucket string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	var pfx, delim string
	if prefix != nil {
		if prefix.HasPrefix {
			pfx = prefix.Prefix
		}
		if prefix.HasDelimiter {
			delim = prefix.Delimiter
		}
	}
	// Without a delimiter the embedded backend walks the bucket and matches
	// keys by plain string prefix, which is all that is needed here.
	all, err := b.MultiBucketBackend.ListBucket(bucket,
		&gofakes3.Prefix{HasPrefix: pfx != "", Prefix: pfx}, gofakes3.ListBucketPage{})
	if err != nil {
		return nil, err
	}
	contents := all.Contents
	slices.SortFunc(contents, func(a, b *gofakes3.Content) int { return strings.Compare(a.Key, b.Key) })

	out := gofakes3.NewObjectList()
	var count int64
	var last, lastPrefix string
	for _, c := range contents {
		if page.HasMarker && c.Key <= page.Marker {
			continue
		}
		if delim != "" {
			if i := strings.Index(c.Key[len(pfx):], delim); i >= 0 {
				cp := c.Key[:len(pfx)+i+len(delim)]
				if cp == lastPrefix || (page.HasMarker && cp <= page.Marker) {
					continue
				}
				if page.MaxKeys > 0 && count == page.MaxKeys {
					out.IsTruncated = true
					break
				}
				out.AddPrefix(cp)
				lastPrefix, last = cp, cp
				count++
				continue
			}
		}
		if page.MaxKeys > 0 && count == page.MaxKeys {
			out.IsTruncated = true
			break
		}
		out.Add(c)
		last = c.Key
		count++
	}
	if out.IsTruncated {
		out.NextMarker = last
	}
	return out, nil
}

// atomicFs makes files opened for writing with truncation (Create,
// afero.WriteFile) appear at their name only when closed after every write
// succeeded, fully synced: they are written under tmp/ and renamed. It also
// removes directories under buckets/ left empty by a delete, so that they
// do not show up as prefixes and a bucket emptied of objects can be deleted.
type atomicFs struct {
	afero.Fs
}

func (fs *atomicFs) Create(name string) (afero.File, error) {
	return fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

func (fs *atomicFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	const replace = os.O_CREATE | os.O_TRUNC
	if flag&replace != replace || flag&(os.O_WRONLY|os.O_RDWR) == 0 || flag&os.O_APPEND != 0 {
		return fs.Fs.OpenFile(name, flag, perm)
	}
	// Fail now, as opening the file itself would, if its directory is missing.
	if fi, err := fs.Fs.Stat(filepath.Dir(name)); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, &os.PathError{Op: "open", Path: name, Err: errors.New("parent is not a directory")}
	}
	tmp, err := afero.TempFile(fs.Fs, tmpDir, ".write-*")
	if err != nil {
		return nil, err
	}
	return &atomicFile{File: tmp, fs: fs.Fs, name: name}, nil
}

func (fs *atomicFs) Remove(name string) error {
	if err := fs.Fs.Remove(name); err != nil {
		return err
	}
	clean := filepath.ToSlash(filepath.Clean(name))
	if !strings.HasPrefix(clean, bucketsDir+"/") {
		return nil
	}
	// Stop at buckets/<bucket>; Remove fails on the first directory that is
	// not empty.
	for dir := path.Dir(clean); strings.Count(dir, "/") >= 2; dir = path.Dir(dir) {
		if fs.Fs.Remove(filepath.FromSlash(dir)) != nil {
			break
		}
	}
	return nil
}

// atomicFile is a file being written under tmp/, to be renamed to name.
type atomicFile struct {
	afero.File
	fs     afero.Fs
	name   string
	failed bool
	closed bool
}

func (f *atomicFile) Name() string { return f.name }

func (f *atomicFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if err != nil {
		f.failed = true
	}
	return n, err
}

func (f *atomicFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	if err != nil {
		f.failed = true
	}
	return n, err
}

func (f *atomicFile) WriteString(s string) (int, error) {
	n, err := f.File.WriteString(s)
	if err != nil {
		f.failed = true
	}
	return n, err
}

func (f *atomicFile) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	tmp := f.File.Name()
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil && f.failed {
		err = fmt.Errorf("write %s: an earlier write failed", f.name)
	}
	if err == nil {
		err = f.fs.Rename(tmp, f.name)
	}
	if err != nil {
		f.fs.Remove(tmp)
		return err
	}
	// Make the rename itself durable; not every platform can sync a
	// directory, so failure here is not an error.
	if d, derr := f.fs.Open(filepath.Dir(f.name)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
