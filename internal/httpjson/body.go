package httpjson

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Decode reads r's body, at most limit bytes, as one JSON value into v:
// unknown fields are refused (v must name every field it takes), and so
// is anything after the value but white space. shape describes the value
// for the error ({"ttl_ms", "owner"}). The error is a *Problem: 413
// body_too_large over limit, 400 bad_request otherwise.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any, shape string) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if p := tooLarge(err); p != nil {
			return p
		}
		return Problemf(http.StatusBadRequest, CodeBadRequest, "the body must be a JSON object %s: %v", shape, err)
	}
	var rest json.RawMessage
	switch err := dec.Decode(&rest); {
	case errors.Is(err, io.EOF):
		return nil
	case tooLarge(err) != nil:
		return tooLarge(err)
	default:
		return Problemf(http.StatusBadRequest, CodeBadRequest, "the body must hold one JSON object %s and nothing after it", shape)
	}
}

// ReadBody reads r's body, at most limit bytes. The error is a *Problem:
// 413 body_too_large over limit, 400 bad_request when the body cannot be
// read (the client went away, or was too slow for the server's read
// timeout).
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if p := tooLarge(err); p != nil {
			return nil, p
		}
		return nil, Problemf(http.StatusBadRequest, CodeBadRequest, "reading the body: %v", err)
	}
	return b, nil
}

func tooLarge(err error) *Problem {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return Problemf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the request body is over %d bytes", mb.Limit)
	}
	return nil
}
