// Package httpjson is how every HTTP endpoint of a Troupe node speaks: one
// JSON error shape for every refusal, method dispatch with a JSON 405 and
// an Allow header, a JSON 404 for unknown paths, request bodies and query
// strings parsed strictly.
//
// The node's endpoints live in several packages (api, consensus, mutex,
// telemetry, cmd/node); they share this package rather than each keeping
// a copy of writeJSON and writeError. It imports nothing of Troupe's, so
// the protocol packages may use it without reaching up into api (DESIGN
// §1); it is internal because it is the node's plumbing, not part of the
// framework's API.
//
// # Usage
//
//	mux := http.NewServeMux()
//	mux.Handle("/v1/things/{id}", httpjson.Methods{
//		http.MethodGet:    get,  // also answers HEAD
//		http.MethodDelete: del,
//	})
//	mux.Handle("/", httpjson.NotFound("/v1/things/{id}"))
//
//	func get(w http.ResponseWriter, r *http.Request) {
//		q, err := httpjson.Query(r, "limit") // any other parameter: 400
//		if err != nil {
//			httpjson.Fail(w, err)
//			return
//		}
//		var body Thing
//		if err := httpjson.Decode(w, r, 1<<20, &body, `{"name"}`); err != nil {
//			httpjson.Fail(w, err) // 400, or 413 over the limit
//			return
//		}
//		httpjson.Write(w, http.StatusOK, thing)
//	}
//
// Every error answer is [Error]: {"error": message, "code": code}, where
// code is a stable name ("bad_request", "not_found", "method_not_allowed",
// "body_too_large", "unauthorized", or one of the endpoint's own, such as
// "cas_failed"); an endpoint may add fields for its own codes
// ([WriteErrorWith]).
//
// A body is one JSON value: unknown fields are refused, and so is anything
// after the value but white space. A query string is refused when a
// parameter is not URL-encoded, is separated by ';', is given twice or is
// not one the endpoint takes; the error names the parameter and what is
// valid. [Query] parses with url.QueryUnescape per parameter rather than
// url.Values.Query, which drops what it cannot parse.
//
// # Concurrency
//
// Everything here is safe for concurrent use; [Methods] is read-only once
// it serves.
//
// # Testing
//
// httpjson_test.go checks each piece on httptest recorders; FuzzQuery and
// FuzzDecode feed them any bytes (a query accepted must agree with
// url.ParseQuery; anything else is a 400 or 413, never a panic); the endpoint
// packages' tests walk their endpoints with wrong methods, unknown paths,
// oversized and trailing-garbage bodies and malformed queries.
package httpjson
