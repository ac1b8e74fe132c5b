// Package logtail reads the end of a local process's log file, for error
// messages of the local-only process control (MinIO, PostgreSQL, the event
// daemon).
package logtail

import (
	"io"
	"os"
	"strings"
)

// Tail returns the last n bytes of the file at path with surrounding white
// space trimmed, or "(no log: <error>)" when the file can not be opened. It
// reads only the tail, however large the file.
func Tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}
