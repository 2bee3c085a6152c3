package httpjson

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Query parses r's query string strictly and returns its parameters, each
// given once, all among valid. It refuses, as a 400 *Problem naming the
// parameter and what is valid: a name or value that is not URL-encoded
// (%zz), a ';' (not a separator), a parameter given twice, and one not in
// valid. r.URL.Query would drop the first two and let the handler act on
// what is left.
func Query(r *http.Request, valid ...string) (url.Values, error) {
	out := url.Values{}
	raw := r.URL.RawQuery
	if raw == "" {
		return out, nil
	}
	validText := "none"
	if len(valid) > 0 {
		validText = strings.Join(valid, ", ")
	}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, Problemf(http.StatusBadRequest, CodeBadRequest,
				"query parameter %q is not URL-encoded (%v); valid parameters: %s", rawName, err, validText)
		}
		if strings.Contains(part, ";") {
			return nil, Problemf(http.StatusBadRequest, CodeBadRequest,
				"query parameter %q holds a ';', which does not separate parameters: separate them with '&' and encode a ';' in a value as %%3B", name)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, Problemf(http.StatusBadRequest, CodeBadRequest,
				"query parameter %q: its value is not URL-encoded (%v); encode it (e.g. curl --data-urlencode)", name, err)
		}
		if !slices.Contains(valid, name) {
			return nil, Problemf(http.StatusBadRequest, CodeBadRequest, "unknown parameter %q; valid: %s", name, validText)
		}
		if out.Has(name) {
			return nil, Problemf(http.StatusBadRequest, CodeBadRequest, "query parameter %q is given twice; give it once", name)
		}
		out.Set(name, value)
	}
	// Belt and braces: what the loop accepted, the standard parser must too.
	if _, err := url.ParseQuery(raw); err != nil {
		return nil, Problemf(http.StatusBadRequest, CodeBadRequest, "the query string is malformed: %v", err)
	}
	return out, nil
}
