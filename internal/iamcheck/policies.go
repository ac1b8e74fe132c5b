package iamcheck

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Policies are the covered (S3, KMS) Allow statements of each function's
// role, by function name, as synthesized by the CDK app (fixture
// testdata/policies.json, kept equal to the template by an infra test).
type Policies map[string][]Statement

// ReadPolicies reads the policies fixture.
func ReadPolicies() (Policies, error) {
	var p Policies
	if err := readJSON(PoliciesFile, &p); err != nil {
		return nil, err
	}
	return p, nil
}

// WritePolicies rewrites the policies fixture.
func WritePolicies(p Policies) error { return writeJSON(PoliciesFile, p) }

// Without returns a copy of sts with action removed from every statement
// (statements left empty are dropped): what a test uses to show that a
// check fails when one grant is missing.
func Without(sts []Statement, action string) []Statement {
	var out []Statement
	for _, s := range sts {
		s.Actions = slices.DeleteFunc(slices.Clone(s.Actions), func(a string) bool { return a == action })
		if len(s.Actions) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// MinIOPolicy renders sts as an S3 policy document for a MinIO user, with
// each symbolic bucket mapped to its local name by buckets. KMS statements
// are dropped (MinIO has no KMS key policies; the recorded-calls check
// covers them) and returned as notes. Resources of unknown buckets are an
// error.
func MinIOPolicy(sts []Statement, buckets map[string]string) (doc []byte, dropped []string, err error) {
	type stmt struct {
		Sid      string   `json:"Sid,omitempty"`
		Effect   string   `json:"Effect"`
		Action   []string `json:"Action"`
		Resource []string `json:"Resource"`
	}
	var out []stmt
	for _, s := range sts {
		var actions []string
		for _, a := range s.Actions {
			if strings.HasPrefix(a, "s3:") {
				actions = append(actions, a)
			} else {
				dropped = append(dropped, fmt.Sprintf("%s on %v", a, s.Resources))
			}
		}
		if len(actions) == 0 {
			continue
		}
		var res []string
		for _, r := range s.Resources {
			bucket, rest, _ := strings.Cut(r, "/")
			name, ok := buckets[bucket]
			if !ok {
				return nil, nil, fmt.Errorf("iamcheck: statement %q: resource %q names no known bucket", s.Sid, r)
			}
			arn := "arn:aws:s3:::" + name
			if rest != "" {
				arn += "/" + rest
			}
			res = append(res, arn)
		}
		out = append(out, stmt{Sid: s.Sid, Effect: "Allow", Action: actions, Resource: res})
	}
	doc, err = json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": out})
	if err != nil {
		return nil, nil, fmt.Errorf("iamcheck: policy: %w", err)
	}
	return doc, dropped, nil
}
