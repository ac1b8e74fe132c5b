package s3test

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
)

// taggingShim adds object tagging to a gofakes3 handler. Tags live in
// memory next to the server; they are set by PUT ?tagging and by the
// x-amz-tagging header of PutObject, replaced by any successful overwrite
// (PutObject or CompleteMultipartUpload) and dropped by DeleteObject.
// Versioned tagging and DeleteObjects are not covered.
type taggingShim struct {
	next http.Handler

	mu   sync.Mutex
	tags map[string][]xmlTag // "bucket/key" -> tag set
}

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type xmlTagging struct {
	XMLName xml.Name `xml:"Tagging"`
	Xmlns   string   `xml:"xmlns,attr,omitempty"`
	TagSet  []xmlTag `xml:"TagSet>Tag"`
}

func newTaggingShim(next http.Handler) *taggingShim {
	return &taggingShim{next: next, tags: map[string][]xmlTag{}}
}

func (s *taggingShim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	if key == "" {
		s.next.ServeHTTP(w, r)
		return
	}
	id := bucket + "/" + key
	if _, ok := q["tagging"]; ok {
		s.serveTagging(w, r, id)
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.next.ServeHTTP(sw, r)
	if sw.status/100 != 2 {
		return
	}
	_, isPart := q["partNumber"]
	switch {
	case r.Method == http.MethodPut && !isPart && q.Get("uploadId") == "":
		s.set(id, parseTagHeader(r.Header.Get("x-amz-tagging")))
	case r.Method == http.MethodPost && q.Get("uploadId") != "":
		s.set(id, nil)
	case r.Method == http.MethodDelete && q.Get("uploadId") == "":
		s.set(id, nil)
	}
}

func (s *taggingShim) serveTagging(w http.ResponseWriter, r *http.Request, id string) {
	if !s.exists(r, id) {
		writeS3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		body := xmlTagging{Xmlns: "http://s3.amazonaws.com/doc/2006-03-01/", TagSet: s.tags[id]}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/xml")
		_, _ = io.WriteString(w, xml.Header)
		_ = xml.NewEncoder(w).Encode(body)
	case http.MethodPut:
		var in xmlTagging
		if err := xml.NewDecoder(r.Body).Decode(&in); err != nil {
			writeS3Error(w, http.StatusBadRequest, "MalformedXML", err.Error())
			return
		}
		s.set(id, in.TagSet)
		w.WriteHeader(http.StatusOK)
	case http.MethodDelete:
		s.set(id, nil)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeS3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

// exists asks gofakes3 whether the object is there with a HEAD request.
func (s *taggingShim) exists(r *http.Request, id string) bool {
	head := httptest.NewRequestWithContext(r.Context(), http.MethodHead, "/"+pathEscape(id), nil)
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, head)
	return rec.Code == http.StatusOK
}

func (s *taggingShim) set(id string, tags []xmlTag) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(tags) == 0 {
		delete(s.tags, id)
		return
	}
	s.tags[id] = tags
}

func parseTagHeader(h string) []xmlTag {
	if h == "" {
		return nil
	}
	v, err := url.ParseQuery(h)
	if err != nil {
		return nil
	}
	var tags []xmlTag
	for k, vs := range v {
		for _, val := range vs {
			tags = append(tags, xmlTag{Key: k, Value: val})
		}
	}
	return tags
}

func pathEscape(id string) string {
	segs := strings.Split(id, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func writeS3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "%s<Error><Code>%s</Code><Message>%s</Message></Error>", xml.Header, code, xmlEscape(msg))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// statusWriter records the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

// WriteHeader records the first status and drops later calls (gofakes3
// writes some error statuses twice).
func (w *statusWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush forwards to the underlying writer when it can flush.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
