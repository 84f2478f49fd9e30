package store

import (
	"errors"
	"fmt"

	"github.com/dfsproject/dfs/pkg/layout"
	"github.com/dfsproject/dfs/proto/dfspb"
)

// Sentinel errors. Returned errors wrap one of these; test with errors.Is.
// Each has an ErrorCode so that it survives an RPC (Code, ErrorCode.Err).
var (
	ErrNotFound      = errors.New("store: not found")
	ErrExists        = errors.New("store: already exists")
	ErrNotEmpty      = errors.New("store: directory not empty")
	ErrNotDir        = errors.New("store: not a directory")
	ErrIsDir         = errors.New("store: is a directory")
	ErrTooBig        = errors.New("store: too big")
	ErrCorrupt       = errors.New("store: checksum mismatch")
	ErrNoAttr        = errors.New("store: no such attribute")
	ErrNameTooLong   = errors.New("store: name too long")
	ErrInvalid       = errors.New("store: invalid argument")
	ErrStale         = errors.New("store: directory is being removed")
	ErrIO            = errors.New("store: i/o error")
	ErrNoSpace       = errors.New("store: no space left on the brick")
	ErrClosed        = errors.New("store: closed")
	ErrInvalidConfig = errors.New("store: invalid config")
)

// ErrorCode is the errno-like outcome of a command or read, as carried by
// StoreResult.code.
type ErrorCode dfspb.StoreErrorCode

// Error codes, one per sentinel.
const (
	CodeOK          = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_OK)
	CodeNotFound    = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_FOUND)
	CodeExists      = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_EXISTS)
	CodeNotEmpty    = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_EMPTY)
	CodeNotDir      = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_NOT_DIR)
	CodeIsDir       = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_IS_DIR)
	CodeTooBig      = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_TOO_BIG)
	CodeCorrupt     = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_CORRUPT)
	CodeNoAttr      = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_NO_ATTR)
	CodeNameTooLong = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_NAME_TOO_LONG)
	CodeInvalid     = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_INVALID)
	CodeStale       = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_STALE)
	CodeIO          = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_IO)
	CodeNoSpace     = ErrorCode(dfspb.StoreErrorCode_STORE_ERROR_CODE_NO_SPACE)
)

var codeErrs = []struct {
	code ErrorCode
	err  error
}{
	{CodeNotFound, ErrNotFound},
	{CodeExists, ErrExists},
	{CodeNotEmpty, ErrNotEmpty},
	{CodeNotDir, ErrNotDir},
	{CodeIsDir, ErrIsDir},
	{CodeTooBig, ErrTooBig},
	{CodeCorrupt, ErrCorrupt},
	{CodeNoAttr, ErrNoAttr},
	{CodeNameTooLong, ErrNameTooLong},
	{CodeInvalid, ErrInvalid},
	{CodeStale, ErrStale},
	{CodeIO, ErrIO},
	{CodeNoSpace, ErrNoSpace},
}

// Code maps an error to its code: CodeOK for nil, the code of the sentinel
// it wraps, and CodeIO for anything else (storage failures, ErrClosed).
func Code(err error) ErrorCode {
	if err == nil {
		return CodeOK
	}
	for _, ce := range codeErrs {
		if errors.Is(err, ce.err) {
			return ce.code
		}
	}
	return CodeIO
}

// Err returns the sentinel of c: nil for CodeOK, ErrIO for unknown codes.
func (c ErrorCode) Err() error {
	if c == CodeOK {
		return nil
	}
	for _, ce := range codeErrs {
		if ce.code == c {
			return ce.err
		}
	}
	return ErrIO
}

// String returns the code's protobuf name.
func (c ErrorCode) String() string { return dfspb.StoreErrorCode(c).String() }

// ResultError returns the error a StoreResult carries: nil when its code is
// OK, otherwise an error that wraps the code's sentinel and reads as the
// result's message (the text of the original error).
func ResultError(r *dfspb.StoreResult) error {
	err := ErrorCode(r.GetCode()).Err()
	if err == nil || r.GetMessage() == "" {
		return err
	}
	return &resultError{err: err, msg: r.GetMessage()}
}

// resultError is an error rebuilt from a StoreResult.
type resultError struct {
	err error
	msg string
}

func (e *resultError) Error() string { return e.msg }
func (e *resultError) Unwrap() error { return e.err }

// CorruptError reports a checksum mismatch in one block of a chunk. It
// wraps ErrCorrupt.
type CorruptError struct {
	File  layout.ID
	Index uint64 // chunk index
	Block int    // block number within the chunk
	// Reason says what was wrong ("crc mismatch", "short file", "marked bad").
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store: chunk %s.%d block %d: %s", e.File, e.Index, e.Block, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
