package alisim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// AdminHandler returns the admin API: JSON over HTTP, meant for tests, the
// demo and the benchmark, never part of the simulated cloud. Every Go
// method of the simulator has a route here; see docs/alisim.md.
func (s *Simulator) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/state", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.State()) })
	mux.HandleFunc("PUT /admin/state", func(w http.ResponseWriter, r *http.Request) {
		var st State
		if decode(w, r, &st) {
			respond(w, s.LoadState(&st), s.State())
		}
	})
	mux.HandleFunc("GET /admin/faults", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Faults()) })
	mux.HandleFunc("POST /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if decode(w, r, &f) {
			s.InjectFault(f)
			writeJSON(w, http.StatusOK, s.Faults())
		}
	})
	mux.HandleFunc("DELETE /admin/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("GET /admin/throttles", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Throttles()) })
	mux.HandleFunc("PUT /admin/throttles", func(w http.ResponseWriter, r *http.Request) {
		var t Throttle
		if decode(w, r, &t) {
			if t.Action == "" {
				writeError(w, fmt.Errorf("action is required (\"*\" for every action): %w", ErrInvalid))
				return
			}
			s.SetThrottle(t.Action, t.QPS, t.Burst)
			writeJSON(w, http.StatusOK, s.Throttles())
		}
	})
	mux.HandleFunc("GET /admin/routes", func(w http.ResponseWriter, r *http.Request) {
		routes, err := s.Routes(r.URL.Query().Get("table"))
		respond(w, err, routes)
	})
	mux.HandleFunc("POST /admin/routes", func(w http.ResponseWriter, r *http.Request) {
		var e RouteEntry
		if decode(w, r, &e) {
			out, err := s.PutRoute(e)
			respond(w, err, out)
		}
	})
	mux.HandleFunc("PATCH /admin/routes/{id}", func(w http.ResponseWriter, r *http.Request) {
		var edit RouteEdit
		if decode(w, r, &edit) {
			respond(w, s.ModifyRoute(r.PathValue("id"), edit), map[string]string{"id": r.PathValue("id")})
		}
	})
	mux.HandleFunc("DELETE /admin/routes/{id}", func(w http.ResponseWriter, r *http.Request) {
		respond(w, s.DeleteRoute(r.PathValue("id")), map[string]string{"id": r.PathValue("id")})
	})
	mux.HandleFunc("GET /admin/instances", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.State().Instances) })
	mux.HandleFunc("POST /admin/instances", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Count     int    `json:"count"`
			VSwitchID string `json:"vswitchId"`
		}
		if decode(w, r, &req) {
			out, err := s.AddInstances(req.Count, req.VSwitchID)
			respond(w, err, out)
		}
	})
	mux.HandleFunc("PATCH /admin/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Status string `json:"status"`
		}
		if decode(w, r, &req) {
			respond(w, s.SetInstanceStatus(r.PathValue("id"), req.Status), map[string]string{"id": r.PathValue("id"), "status": req.Status})
		}
	})
	mux.HandleFunc("DELETE /admin/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		respond(w, s.ReleaseInstance(r.PathValue("id")), map[string]string{"id": r.PathValue("id")})
	})
	mux.HandleFunc("POST /admin/vswitches", func(w http.ResponseWriter, r *http.Request) {
		var v VSwitch
		if decode(w, r, &v) {
			out, err := s.AddVSwitch(v)
			respond(w, err, out)
		}
	})
	mux.HandleFunc("POST /admin/tables", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			RouteTable
			VSwitchIDs []string `json:"vswitchIds"`
		}
		if decode(w, r, &req) {
			out, err := s.AddTable(req.RouteTable, req.VSwitchIDs...)
			respond(w, err, out)
		}
	})
	mux.HandleFunc("PUT /admin/tables/{id}/quota", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Quota int `json:"quota"`
		}
		if decode(w, r, &req) {
			respond(w, s.SetQuota(r.PathValue("id"), req.Quota), map[string]any{"id": r.PathValue("id"), "quota": req.Quota})
		}
	})
	mux.HandleFunc("POST /admin/accesskeys", func(w http.ResponseWriter, r *http.Request) {
		var k AccessKey
		if decode(w, r, &k) {
			if k.ID == "" || k.Secret == "" {
				writeError(w, fmt.Errorf("id and secret are required: %w", ErrInvalid))
				return
			}
			if k.Policy != nil {
				if err := k.Policy.Validate(); err != nil {
					writeError(w, err)
					return
				}
			}
			s.AddAccessKey(k.ID, k.Secret, k.AllowedActions...)
			err := errors.Join(s.SetAccessKeyDisabled(k.ID, k.Disabled), s.SetAccessKeyPolicy(k.ID, k.Policy))
			respond(w, err, map[string]string{"id": k.ID})
		}
	})
	mux.HandleFunc("PUT /admin/accesskeys/{id}/policy", func(w http.ResponseWriter, r *http.Request) {
		var p Policy
		if decode(w, r, &p) {
			respond(w, s.SetAccessKeyPolicy(r.PathValue("id"), &p), map[string]string{"id": r.PathValue("id")})
		}
	})
	mux.HandleFunc("DELETE /admin/accesskeys/{id}/policy", func(w http.ResponseWriter, r *http.Request) {
		respond(w, s.SetAccessKeyPolicy(r.PathValue("id"), nil), map[string]string{"id": r.PathValue("id")})
	})
	mux.HandleFunc("PUT /admin/roles/policy", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ARN    string  `json:"arn"`
			Policy *Policy `json:"policy"`
		}
		if decode(w, r, &req) {
			respond(w, s.SetRolePolicy(req.ARN, req.Policy), map[string]string{"arn": req.ARN})
		}
	})
	mux.HandleFunc("PUT /admin/vpcs/{id}/busy", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Busy bool `json:"busy"`
		}
		if decode(w, r, &req) {
			respond(w, s.SetBusy(r.PathValue("id"), req.Busy), map[string]any{"id": r.PathValue("id"), "busy": req.Busy})
		}
	})
	mux.HandleFunc("POST /admin/oidc-tokens", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Token       string `json:"token"`
			ProviderARN string `json:"providerArn"`
		}
		if decode(w, r, &req) {
			if req.Token == "" || req.ProviderARN == "" {
				writeError(w, fmt.Errorf("token and providerArn are required: %w", ErrInvalid))
				return
			}
			s.RegisterOIDCToken(req.Token, req.ProviderARN)
			writeJSON(w, http.StatusOK, map[string]string{"providerArn": req.ProviderARN})
		}
	})
	s.registerENIAdmin(mux)
	mux.HandleFunc("GET /admin/counters", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Counters()) })
	mux.HandleFunc("DELETE /admin/counters", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetCounters()
		writeJSON(w, http.StatusOK, s.Counters())
	})
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, fmt.Errorf("decoding request body: %w: %w", ErrInvalid, err))
		return false
	}
	return true
}

func respond(w http.ResponseWriter, err error, v any) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
