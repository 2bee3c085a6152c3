package jobs

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of the texts a job's status carries: a script chooses its error
// messages (fail("…")), so they are cut to size and cleaned of control
// characters before they reach a table, a log or a terminal.
const (
	// MaxNameBytes bounds Submit.Name.
	MaxNameBytes = 255
	// maxErrorLine bounds Status.Error.
	maxErrorLine = 1024
	// maxTraceback bounds Status.Traceback.
	maxTraceback = 16 << 10
)

// checkName refuses a script name that could not be shown as it is.
func checkName(name string) error {
	switch {
	case len(name) > MaxNameBytes:
		return fmt.Errorf("%w: the script's name is %d bytes; the limit is %d", ErrInvalidJob, len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: the script's name is not UTF-8", ErrInvalidJob)
	case strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }):
		return fmt.Errorf("%w: the script's name %+q has a control or non-printing character; use printable characters and spaces", ErrInvalidJob, name)
	}
	return nil
}

// describe turns the error a job ended with into its one-line Error and,
// when there is more to it (a traceback), its Traceback: the script's
// positions name the submitted file, lines are cut to size and control
// characters replaced.
func describe(why, name string) (line, trace string) {
	if why == "" {
		return "", ""
	}
	if name != "" {
		why = strings.ReplaceAll(why, scriptFile+":", name+":")
	}
	first, rest, multi := strings.Cut(why, "\n")
	line = truncate(clean(first, false), maxErrorLine)
	if (multi && strings.TrimSpace(rest) != "") || line != first {
		trace = truncate(clean(why, true), maxTraceback)
	}
	return line, trace
}

// clean replaces control characters (and, unless lines, line breaks) with
// a space and invalid UTF-8 with U+FFFD.
func clean(s string, lines bool) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case lines && r == '\n':
			return r
		case r == '\t':
			return ' '
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r):
			return ' '
		}
		return r
	}, s)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " …(cut)"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
