package taskbot

import (
	"errors"
	"fmt"
)

// Code classifies an Error for the adapter that shows it.
type Code string

// The error codes.
const (
	EInvalid   Code = "invalid"   // the request cannot be understood; show usage
	ENotFound  Code = "not_found" // e.g. an unknown stack
	EForbidden Code = "forbidden" // the user may not do this
	EDenied    Code = "denied"    // a policy refused it
	EConflict  Code = "conflict"  // the stack is locked or busy
	EInternal  Code = "internal"  // anything unexpected; users see only a reference
)

// Error is an error meant for the person who made the request: Message is a
// sentence they can act on. Errors of any other type are internal, and
// adapters show them only as a reference into the log.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is or wraps an *Error, and
// EInternal otherwise.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// Sentinels that stores return and the task lifecycle branches on.
var (
	ErrNotFound  = errors.New("not found")
	ErrLeaseLost = errors.New("lease lost: the stack is no longer held by this token")
	ErrNotLocked = errors.New("not locked")
)

// UserMessage returns the sentence meant for the requester when err is or
// wraps an *Error that is not internal. Adapters show anything else only as
// a reference into the log.
func UserMessage(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal {
		return e.Message, true
	}
	return "", false
}
