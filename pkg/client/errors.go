package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// Sentinel errors. Every error a Volume or File method returns wraps one of
// these (test with errors.Is), or is a context error when the caller's
// context ended first. fuse/ maps them to errno values in one function.
var (
	ErrNotFound      = errors.New("client: no such file or directory")   // ENOENT
	ErrExists        = errors.New("client: file exists")                 // EEXIST
	ErrNotEmpty      = errors.New("client: directory not empty")         // ENOTEMPTY
	ErrNotDir        = errors.New("client: not a directory")             // ENOTDIR
	ErrIsDir         = errors.New("client: is a directory")              // EISDIR
	ErrNameTooLong   = errors.New("client: file name too long")          // ENAMETOOLONG
	ErrInvalid       = errors.New("client: invalid argument")            // EINVAL
	ErrStale         = errors.New("client: stale file handle")           // ESTALE
	ErrTooBig        = errors.New("client: too big")                     // EFBIG, E2BIG for xattrs
	ErrNoAttr        = errors.New("client: no such attribute")           // ENODATA
	ErrIO            = errors.New("client: i/o error")                   // EIO
	ErrNoSpace       = errors.New("client: no space left on the volume") // ENOSPC
	ErrCorrupt       = errors.New("client: checksum mismatch")           // EIO
	ErrUnavailable   = errors.New("client: subvolume unavailable")       // EIO (after FailoverTimeout)
	ErrNoVolume      = errors.New("client: no such volume")              // mount fails
	ErrNotStarted    = errors.New("client: volume not started")          // mount fails
	ErrReadOnly      = errors.New("client: read-only volume")            // EROFS
	ErrNotSupported  = errors.New("client: operation not supported")     // EOPNOTSUPP
	ErrNotPermitted  = errors.New("client: operation not permitted")     // EPERM
	ErrClosed        = errors.New("client: volume closed")               // EIO
	ErrInvalidConfig = errors.New("client: invalid config")
)

// codeErrs maps store error codes to sentinels; the one place where that
// happens.
var codeErrs = map[dfspb.StoreErrorCode]error{
	dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_FOUND:     ErrNotFound,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_EXISTS:        ErrExists,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_EMPTY:     ErrNotEmpty,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_DIR:       ErrNotDir,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_IS_DIR:        ErrIsDir,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_TOO_BIG:       ErrTooBig,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_CORRUPT:       ErrCorrupt,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_NO_ATTR:       ErrNoAttr,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_NAME_TOO_LONG: ErrNameTooLong,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_INVALID:       ErrInvalid,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_STALE:         ErrStale,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_IO:            ErrIO,
	dfspb.StoreErrorCode_STORE_ERROR_CODE_NO_SPACE:      ErrNoSpace,
}

// codeError turns a store result code and message into an error: nil for
// OK, otherwise an error wrapping the code's sentinel (ErrIO for codes this
// client does not know) with the store's message as detail.
func codeError(code dfspb.StoreErrorCode, msg string) error {
	if code == dfspb.StoreErrorCode_STORE_ERROR_CODE_OK {
		return nil
	}
	err, ok := codeErrs[code]
	if !ok {
		err = ErrIO
	}
	if msg == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, msg)
}

// ctxError wraps the error of an ended context so that callers can tell an
// interrupted call (context.Canceled) from a timeout.
func ctxError(ctx context.Context, what string) error {
	return fmt.Errorf("client: %s: %w", what, context.Cause(ctx))
}
