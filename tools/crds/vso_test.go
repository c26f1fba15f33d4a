package crds

// Vault Secrets Operator publishes no Go module the proxy serves, and its API types are
// BUSL-licensed: its resources are checked against this schema instead, written from
// VSO's api/v1beta1 types (vaultconnection_types.go, vaultauth_types.go,
// vaultdynamicsecret_types.go, common.go) as of 0.5 to 1.6: their fields a recipe is
// likely to use, with types, required fields and allowed values. A field it does not know
// is an error, as for an API server with strict field validation: add it here, from VSO's
// types, before a recipe uses it.

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// kind is the type of a schema node.
type kind int

const (
	kString kind = iota
	kBool
	kInt
	kObject    // fields, each known
	kList      // of elem
	kStringMap // a map of string to string (labels, headers, params)
	kMap       // a map of string to elem
)

// node is a schema: a field's type, whether it must be set, and what it holds.
type node struct {
	kind     kind
	required bool
	fields   map[string]node // object
	elem     *node           // list, mapOf
	enum     []string        // str: the allowed values
	pattern  *regexp.Regexp  // str
	min, max *int            // integer
}

func intPtr(n int) *int { return &n }

var vsoMetadata = node{kind: kObject, required: true, fields: map[string]node{
	"name":        {kind: kString, required: true},
	"namespace":   {kind: kString},
	"labels":      {kind: kStringMap},
	"annotations": {kind: kStringMap},
}}

// vsoResource is the schema of a whole VSO resource of the given kind.
func vsoResource(kindName string, spec node) node {
	spec.required = true
	return node{kind: kObject, fields: map[string]node{
		"apiVersion": {kind: kString, required: true, enum: []string{"secrets.hashicorp.com/v1beta1"}},
		"kind":       {kind: kString, required: true, enum: []string{kindName}},
		"metadata":   vsoMetadata,
		"spec":       spec,
	}}
}

var vsoSchemas = map[string]node{
	"VaultConnection": vsoResource("VaultConnection", node{kind: kObject, fields: map[string]node{
		"address":         {kind: kString, required: true},
		"headers":         {kind: kStringMap},
		"tlsServerName":   {kind: kString},
		"caCertSecretRef": {kind: kString},
		"skipTLSVerify":   {kind: kBool},
		"timeout":         {kind: kString}, // 0.8.1
	}}),
	"VaultAuth": vsoResource("VaultAuth", node{kind: kObject, fields: map[string]node{
		"vaultConnectionRef": {kind: kString},
		"namespace":          {kind: kString},
		"allowedNamespaces":  {kind: kList, elem: &node{kind: kString}},
		"method":             {kind: kString, required: true, enum: []string{"kubernetes", "jwt", "appRole", "aws", "gcp"}},
		"mount":              {kind: kString, required: true},
		"params":             {kind: kStringMap},
		"headers":            {kind: kStringMap},
		"kubernetes": {kind: kObject, fields: map[string]node{
			"role":                   {kind: kString, required: true},
			"serviceAccount":         {kind: kString, required: true},
			"audiences":              {kind: kList, elem: &node{kind: kString}},
			"tokenExpirationSeconds": {kind: kInt, min: intPtr(600)},
		}},
	}}),
	"VaultDynamicSecret": vsoResource("VaultDynamicSecret", node{kind: kObject, fields: map[string]node{
		"vaultAuthRef":      {kind: kString},
		"namespace":         {kind: kString},
		"mount":             {kind: kString, required: true},
		"path":              {kind: kString, required: true},
		"requestHTTPMethod": {kind: kString, enum: []string{"GET", "POST", "PUT"}},
		"params":            {kind: kStringMap},
		"renewalPercent":    {kind: kInt, min: intPtr(0), max: intPtr(90)},
		"revoke":            {kind: kBool},
		"allowStaticCreds":  {kind: kBool},
		"refreshAfter":      {kind: kString, pattern: regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(s|m|h))$`)},
		"rolloutRestartTargets": {kind: kList, elem: &node{kind: kObject, fields: map[string]node{
			"kind": {kind: kString, required: true, enum: []string{"Deployment", "DaemonSet", "StatefulSet", "argo.Rollout"}},
			"name": {kind: kString, required: true},
		}}},
		"destination": {kind: kObject, required: true, fields: map[string]node{
			"name":        {kind: kString, required: true},
			"create":      {kind: kBool},
			"overwrite":   {kind: kBool},
			"labels":      {kind: kStringMap},
			"annotations": {kind: kStringMap},
			"type":        {kind: kString},
			"transformation": {kind: kObject, fields: map[string]node{ // 0.5
				"templates": {kind: kMap, elem: &node{kind: kObject, fields: map[string]node{
					"name": {kind: kString},
					"text": {kind: kString},
				}}},
				"includes":   {kind: kList, elem: &node{kind: kString}},
				"excludes":   {kind: kList, elem: &node{kind: kString}},
				"excludeRaw": {kind: kBool},
			}},
		}},
		"syncConfig": {kind: kObject, fields: map[string]node{ // 1.6
			"instantUpdates": {kind: kBool},
			"engineType":     {kind: kString},
		}},
	}}),
}

// validate checks v (YAML decoded to JSON values: map[string]any, []any, string, float64,
// bool, nil) against n, at path.
func (n node) validate(path string, v any) []error {
	bad := func(format string, args ...any) []error {
		return []error{fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))}
	}
	if v == nil {
		return bad("null")
	}
	switch n.kind {
	case kString:
		s, ok := v.(string)
		switch {
		case !ok:
			return bad("%v is not a string", v)
		case n.enum != nil && !slices.Contains(n.enum, s):
			return bad("%q is not one of %v", s, n.enum)
		case n.pattern != nil && !n.pattern.MatchString(s):
			return bad("%q does not match %s", s, n.pattern)
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			return bad("%v is not a boolean", v)
		}
	case kInt:
		f, ok := v.(float64)
		switch {
		case !ok || f != float64(int64(f)):
			return bad("%v is not an integer", v)
		case n.min != nil && f < float64(*n.min):
			return bad("%v is below %d", v, *n.min)
		case n.max != nil && f > float64(*n.max):
			return bad("%v is above %d", v, *n.max)
		}
	case kStringMap:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("not a map")
		}
		var errs []error
		for k, x := range m {
			if _, ok := x.(string); !ok {
				errs = append(errs, fmt.Errorf("%s.%s: %v is not a string", path, k, x))
			}
		}
		return errs
	case kList:
		l, ok := v.([]any)
		if !ok {
			return bad("not a list")
		}
		var errs []error
		for i, x := range l {
			errs = append(errs, n.elem.validate(fmt.Sprintf("%s[%d]", path, i), x)...)
		}
		return errs
	case kMap:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("not a map")
		}
		var errs []error
		for k, x := range m {
			errs = append(errs, n.elem.validate(path+"."+k, x)...)
		}
		return errs
	case kObject:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("not an object")
		}
		var errs []error
		for _, k := range sortedKeys(m) {
			f, known := n.fields[k]
			if !known {
				errs = append(errs, fmt.Errorf("%s: unknown field %q (known: %s)", path, k, strings.Join(sortedKeys(n.fields), ", ")))
				continue
			}
			errs = append(errs, f.validate(path+"."+k, m[k])...)
		}
		for _, k := range sortedKeys(n.fields) {
			if _, set := m[k]; n.fields[k].required && !set {
				errs = append(errs, fmt.Errorf("%s: required field %q is missing", path, k))
			}
		}
		return errs
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
