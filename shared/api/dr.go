package api

import (
	"net/http"

	"github.com/geoblob/geoblob/shared/registry"
)

// BrakeJSON is GET /api/v1/delete-brake: the brake's state and the first
// held deletes in key order.
type BrakeJSON struct {
	registry.BrakeStatus
	// HeldKeys are up to 100 held deletes (data type and key).
	HeldKeys []HeldJSON `json:"held_keys"`
}

// HeldJSON is one held delete.
type HeldJSON struct {
	ID        int64  `json:"id"`
	DataType  string `json:"data_type"`
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	DeletedAt string `json:"deleted_at,omitempty"`
	Reason    string `json:"reason"`
}

// HoldRequest is the body of POST /api/v1/delete-brake/{action}.
type HoldRequest struct {
	DataType string `json:"data_type,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	DryRun   bool   `json:"dry_run,omitempty"`
}

// HoldResultJSON answers a release or discard.
type HoldResultJSON struct {
	Action string              `json:"action"`
	Filter registry.HoldFilter `json:"filter"`
	DryRun bool                `json:"dry_run"`
	Rows   int64               `json:"rows"`
}

func (s *Server) drRoutes() []route {
	return []route{
		{"GET", "/api/v1/delete-brake", s.jsonHandler(s.getBrake)},
		{"POST", "/api/v1/delete-brake/release", s.jsonHandler(s.postHold(registry.ActionRelease))},
		{"POST", "/api/v1/delete-brake/discard", s.jsonHandler(s.postHold(registry.ActionDiscard))},
		{"GET", DRReportPath, http.HandlerFunc(s.getDRReport)},
	}
}

func (s *Server) brake(r *http.Request) (BrakeJSON, error) {
	st, err := s.o.Registry.BrakeStatus(r.Context())
	if err != nil {
		return BrakeJSON{}, err
	}
	rows, err := s.o.Registry.Held(r.Context(), registry.HoldFilter{}, "", 100)
	if err != nil {
		return BrakeJSON{}, err
	}
	return BrakeJSON{BrakeStatus: st, HeldKeys: heldJSON(rows)}, nil
}

// heldJSON lists held deletes on the wire.
func heldJSON(rows []registry.Row) []HeldJSON {
	out := make([]HeldJSON, 0, len(rows))
	for _, row := range rows {
		h := HeldJSON{ID: row.ID, DataType: row.DataType, Key: row.ObjectKey, Size: row.Size, Reason: row.LastSyncFailure}
		if row.DeletedAt != nil {
			h.DeletedAt = row.DeletedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		out = append(out, h)
	}
	return out
}

func (s *Server) getBrake(r *http.Request) (int, any, error) {
	b, err := s.brake(r)
	return http.StatusOK, b, err
}

// resolveHeld releases or discards held deletes (dry run: counts them);
// audited under the caller's identity.
func (s *Server) resolveHeld(r *http.Request, a registry.HoldAction, req HoldRequest) (HoldResultJSON, error) {
	if !s.o.ActionsEnabled {
		return HoldResultJSON{}, errForbidden
	}
	f := registry.HoldFilter{DataType: req.DataType, Prefix: req.Prefix}
	actor := s.o.Identity(r)
	n, err := s.o.Registry.ResolveHeld(r.Context(), a, f, actor, req.DryRun)
	if err != nil {
		return HoldResultJSON{}, err
	}
	if !req.DryRun {
		s.o.Logger.Info("api: held deletes resolved", "action", a, "filter", f, "actor", actor, "rows", n)
	}
	return HoldResultJSON{Action: string(a), Filter: f, DryRun: req.DryRun, Rows: n}, nil
}

func (s *Server) postHold(a registry.HoldAction) func(r *http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		var req HoldRequest
		if err := decodeBody(r, &req); err != nil {
			return 0, nil, err
		}
		out, err := s.resolveHeld(r, a, req)
		return http.StatusOK, out, err
	}
}
