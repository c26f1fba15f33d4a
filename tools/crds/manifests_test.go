package crds

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	esv1 "github.com/external-secrets/external-secrets/apis/externalsecrets/v1"
	genv1alpha1 "github.com/external-secrets/external-secrets/apis/generators/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	k8sjson "k8s.io/apimachinery/pkg/util/json"
	sigsjson "sigs.k8s.io/json"
	csiv1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/yaml"
)

// recipesDir holds the recipes, relative to this module.
const recipesDir = "../../docs/recipes"

// The consumer recipes whose YAML blocks this module checks.
var recipeFiles = []string{"vso.md", "csi.md", "eso.md"}

// The modules whose types and CustomResourceDefinitions the manifests are checked against
// (the versions in go.mod).
const (
	csiModule = "sigs.k8s.io/secrets-store-csi-driver"
	esoModule = "github.com/external-secrets/external-secrets"
)

// helmValues maps a block of Helm values to the chart whose values.yaml must know its keys.
var helmValues = map[string]struct{ module, file string }{
	"csi-driver-values": {csiModule, "charts/secrets-store-csi-driver/values.yaml"},
}

// crd is where a kind's CustomResourceDefinition lies in its module.
type crd struct{ module, file, version string }

// kindCheck checks one document of a kind; a nil crd means no schema beyond the Go type.
type kindCheck struct {
	decode func(raw []byte) error
	crd    *crd
	extra  func(raw []byte) error
}

// decodeStrict decodes YAML into v as an API server with strict field validation does:
// field names match case-sensitively, and an unknown or repeated field is an error.
// (encoding/json, under sigs.k8s.io/yaml's UnmarshalStrict, matches names regardless of
// case: it would take "secretkey" for secretKey.)
func decodeStrict(raw []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// strictly returns a decoder into a fresh T (decodeStrict).
func strictly[T any]() func([]byte) error {
	return func(raw []byte) error {
		var v T
		return decodeStrict(raw, &v)
	}
}

// kinds are the documents a recipe may hold, by "apiVersion kind".
var kinds = map[string]kindCheck{
	"secrets-store.csi.x-k8s.io/v1 SecretProviderClass": {
		decode: strictly[csiv1.SecretProviderClass](),
		crd:    &crd{csiModule, "config/crd/bases/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml", "v1"},
		extra:  checkVaultParameters,
	},
	"external-secrets.io/v1 ExternalSecret": {
		decode: strictly[esv1.ExternalSecret](),
		crd:    &crd{esoModule, "config/crds/bases/external-secrets.io_externalsecrets.yaml", "v1"},
	},
	"generators.external-secrets.io/v1alpha1 VaultDynamicSecret": {
		decode: strictly[genv1alpha1.VaultDynamicSecret](),
		crd:    &crd{esoModule, "config/crds/bases/generators.external-secrets.io_vaultdynamicsecrets.yaml", "v1alpha1"},
	},
	"v1 Pod":             {decode: strictly[corev1.Pod](), extra: checkCSIVolumes},
	"apps/v1 Deployment": {decode: strictly[appsv1.Deployment]()},
	"secrets.hashicorp.com/v1beta1 VaultConnection":    {decode: vsoDecoder("VaultConnection")},
	"secrets.hashicorp.com/v1beta1 VaultAuth":          {decode: vsoDecoder("VaultAuth")},
	"secrets.hashicorp.com/v1beta1 VaultDynamicSecret": {decode: vsoDecoder("VaultDynamicSecret")},
}

func vsoDecoder(kind string) func([]byte) error {
	return func(raw []byte) error {
		var v any
		if err := decodeStrict(raw, &v); err != nil {
			return err
		}
		return errors.Join(vsoSchemas[kind].validate(kind, v)...)
	}
}

// checkManifest checks one YAML document: its kind must be known, and it must decode
// strictly into that kind's type and pass its schema and extra checks.
func checkManifest(raw []byte) error {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(raw, &head); err != nil {
		return err
	}
	kc, ok := kinds[head.APIVersion+" "+head.Kind]
	if !ok {
		return fmt.Errorf("apiVersion %q kind %q: not a kind this test knows", head.APIVersion, head.Kind)
	}
	if err := kc.decode(raw); err != nil {
		return fmt.Errorf("%s: %w", head.Kind, err)
	}
	if kc.crd != nil {
		if err := kc.crd.validate(raw); err != nil {
			return fmt.Errorf("%s: %w", head.Kind, err)
		}
	}
	if kc.extra != nil {
		if err := kc.extra(raw); err != nil {
			return fmt.Errorf("%s: %w", head.Kind, err)
		}
	}
	return nil
}

var moduleDirs sync.Map // module path -> directory

// moduleDir is where the go command keeps module, as go.mod's build list has it.
func moduleDir(module string) (string, error) {
	if d, ok := moduleDirs.Load(module); ok {
		return d.(string), nil
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go list -m %s: not downloaded (go mod download)", module)
	}
	moduleDirs.Store(module, dir)
	return dir, nil
}

var validators sync.Map // crd -> validation.SchemaValidator

// validate checks raw against the openAPIV3Schema of the CRD's version, as an API server
// does on create: required fields, types, enums, patterns.
func (c *crd) validate(raw []byte) error {
	v, ok := validators.Load(*c)
	if !ok {
		sv, err := c.load()
		if err != nil {
			return err
		}
		v, _ = validators.LoadOrStore(*c, sv)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return err
	}
	var obj map[string]any
	if err := k8sjson.Unmarshal(js, &obj); err != nil { // integers as int64, as the API server has them
		return err
	}
	if errs := validation.ValidateCustomResource(nil, obj, v.(validation.SchemaValidator)); len(errs) > 0 {
		return fmt.Errorf("against %s: %w", filepath.Base(c.file), errs.ToAggregate())
	}
	return nil
}

func (c *crd) load() (validation.SchemaValidator, error) {
	dir, err := moduleDir(c.module)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, c.file)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var def apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &def); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, ver := range def.Spec.Versions {
		if ver.Name != c.version || ver.Schema == nil {
			continue
		}
		if !ver.Served {
			return nil, fmt.Errorf("%s: version %s is not served", path, c.version)
		}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(ver.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			return nil, err
		}
		sv, _, err := validation.NewSchemaValidator(&internal)
		return sv, err
	}
	return nil, fmt.Errorf("%s has no version %s", path, c.version)
}

// vaultParameters are the parameters of the Vault CSI provider
// (vault-csi-provider internal/config/config.go).
var vaultParameters = []string{"roleName", "vaultAddress", "vaultNamespace", "vaultSkipTLSVerify",
	"vaultCACertPath", "vaultCADirectory", "vaultTLSServerName", "vaultTLSClientCertPath",
	"vaultTLSClientKeyPath", "vaultAuthMountPath", "vaultKubernetesMountPath", "audience", "auth", "objects"}

// vaultObject is one entry of the Vault provider's objects parameter (config.Secret).
type vaultObject struct {
	ObjectName     string         `json:"objectName"`
	SecretPath     string         `json:"secretPath"`
	SecretKey      string         `json:"secretKey"`
	Method         string         `json:"method,omitempty"`
	SecretArgs     map[string]any `json:"secretArgs,omitempty"`
	FilePermission *int           `json:"filePermission,omitempty"`
	Encoding       string         `json:"encoding,omitempty"`
}

// checkVaultParameters checks a SecretProviderClass for the Vault provider: only the
// provider's parameters, roleName and objects set, and objects a YAML list whose entries
// name objectName, secretPath and secretKey, each objectName once.
func checkVaultParameters(raw []byte) error {
	var spc csiv1.SecretProviderClass
	if err := yaml.Unmarshal(raw, &spc); err != nil {
		return err
	}
	if spc.Spec.Provider != "vault" {
		return fmt.Errorf("provider %q, want vault", spc.Spec.Provider)
	}
	p := spc.Spec.Parameters
	var errs []error
	for _, k := range sortedKeys(p) {
		if !slices.Contains(vaultParameters, k) {
			errs = append(errs, fmt.Errorf("parameters: unknown parameter %q of the Vault provider", k))
		}
	}
	if p["roleName"] == "" {
		errs = append(errs, errors.New("parameters: roleName is required"))
	}
	if p["vaultAuthMountPath"] != "" && p["vaultKubernetesMountPath"] != "" {
		errs = append(errs, errors.New("parameters: vaultAuthMountPath and vaultKubernetesMountPath are exclusive"))
	}
	objects, err := vaultObjects(p["objects"])
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	names := map[string]bool{}
	for i, o := range objects {
		for field, v := range map[string]string{"objectName": o.ObjectName, "secretPath": o.SecretPath, "secretKey": o.SecretKey} {
			if v == "" {
				errs = append(errs, fmt.Errorf("objects[%d]: %s is required", i, field))
			}
		}
		if names[o.ObjectName] {
			errs = append(errs, fmt.Errorf("objects[%d]: objectName %q is used twice", i, o.ObjectName))
		}
		names[o.ObjectName] = true
		if o.Encoding != "" && !slices.Contains([]string{"utf-8", "base64", "hex"}, o.Encoding) {
			errs = append(errs, fmt.Errorf("objects[%d]: encoding %q", i, o.Encoding))
		}
	}
	return errors.Join(errs...)
}

// vaultObjects decodes the objects parameter strictly; it must list at least one object.
func vaultObjects(s string) ([]vaultObject, error) {
	var objects []vaultObject
	if err := decodeStrict([]byte(s), &objects); err != nil {
		return nil, fmt.Errorf("parameters.objects: %w", err)
	}
	if len(objects) == 0 {
		return nil, errors.New("parameters.objects: no object")
	}
	return objects, nil
}

// checkCSIVolumes checks a Pod's CSI volumes: the Secrets Store driver, read-only, naming a
// SecretProviderClass and nothing else.
func checkCSIVolumes(raw []byte) error {
	var pod corev1.Pod
	if err := yaml.Unmarshal(raw, &pod); err != nil {
		return err
	}
	var errs []error
	for _, v := range pod.Spec.Volumes {
		if v.CSI == nil {
			continue
		}
		switch {
		case v.CSI.Driver != "secrets-store.csi.k8s.io":
			errs = append(errs, fmt.Errorf("volume %s: driver %q", v.Name, v.CSI.Driver))
		case v.CSI.ReadOnly == nil || !*v.CSI.ReadOnly:
			errs = append(errs, fmt.Errorf("volume %s: the driver mounts read-only volumes only", v.Name))
		case v.CSI.VolumeAttributes["secretProviderClass"] == "":
			errs = append(errs, fmt.Errorf("volume %s: no volumeAttributes.secretProviderClass", v.Name))
		}
		for k := range v.CSI.VolumeAttributes {
			if k != "secretProviderClass" {
				errs = append(errs, fmt.Errorf("volume %s: unknown volumeAttributes key %q", v.Name, k))
			}
		}
	}
	return errors.Join(errs...)
}

// checkHelmValues checks that every key of values is a key of the chart's values.yaml, at
// the same place.
func checkHelmValues(values []byte, module, file string) error {
	dir, err := moduleDir(module)
	if err != nil {
		return err
	}
	chartRaw, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return err
	}
	var chart, mine map[string]any
	if err := yaml.Unmarshal(chartRaw, &chart); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := decodeStrict(values, &mine); err != nil {
		return err
	}
	return errors.Join(compareValues("", mine, chart)...)
}

func compareValues(path string, mine, chart map[string]any) []error {
	var errs []error
	for _, k := range sortedKeys(mine) {
		c, ok := chart[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s%s: not a value of the chart", path, k))
			continue
		}
		sub, isMap := mine[k].(map[string]any)
		csub, chartMap := c.(map[string]any)
		switch {
		case isMap && chartMap:
			errs = append(errs, compareValues(path+k+".", sub, csub)...)
		case isMap != chartMap && c != nil:
			errs = append(errs, fmt.Errorf("%s%s: the chart's value is %T", path, k, c))
		}
	}
	return errs
}

// manifest is one document of a recipe's YAML block.
type manifest struct {
	block string
	raw   []byte
	obj   map[string]any
}

func (m manifest) kind() string { return fmt.Sprint(m.obj["apiVersion"], " ", m.obj["kind"]) }

func (m manifest) get(path ...string) any {
	var v any = m.obj
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

func (m manifest) str(path ...string) string { s, _ := m.get(path...).(string); return s }

// readRecipe returns the YAML documents of file's blocks, failing on a block whose
// language this test does not handle, and the Helm values blocks apart.
func readRecipe(t *testing.T, file string) (docs []manifest, values map[string][]byte) {
	t.Helper()
	blocks, err := ReadBlocks(filepath.Join(recipesDir, file))
	if err != nil {
		t.Fatal(err)
	}
	values = map[string][]byte{}
	for _, b := range blocks {
		switch b.Lang {
		case "sh": // run by the integration test
			continue
		case "yaml":
		default:
			t.Fatalf("%s: block %s is %q, neither yaml nor sh", file, b.Name, b.Lang)
		}
		if _, ok := helmValues[b.Name]; ok {
			values[b.Name] = []byte(b.Body)
			continue
		}
		for _, d := range Documents(b.Body) {
			m := manifest{block: b.Name, raw: []byte(d)}
			if err := yaml.Unmarshal(m.raw, &m.obj); err != nil {
				t.Fatalf("%s: block %s: %v", file, b.Name, err)
			}
			docs = append(docs, m)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s has no manifest", file)
	}
	return docs, values
}

// TestRecipeManifests decodes every manifest of the consumer recipes strictly, checks it
// against its kind's schema, and checks how the manifests of a recipe refer to each other.
func TestRecipeManifests(t *testing.T) {
	for _, file := range recipeFiles {
		t.Run(file, func(t *testing.T) {
			docs, values := readRecipe(t, file)
			for _, m := range docs {
				if err := checkManifest(m.raw); err != nil {
					t.Errorf("block %s, %s %s: %v", m.block, m.kind(), m.str("metadata", "name"), err)
				}
			}
			for name, v := range values {
				hv := helmValues[name]
				if err := checkHelmValues(v, hv.module, hv.file); err != nil {
					t.Errorf("block %s: %v", name, err)
				}
			}
			if !t.Failed() {
				crossChecks[file](t, docs, values)
			}
		})
	}
}

// crossChecks check what a recipe's manifests say together.
var crossChecks = map[string]func(t *testing.T, docs []manifest, values map[string][]byte){
	"vso.md": func(t *testing.T, docs []manifest, _ map[string][]byte) {
		auths, conns, secrets, deployments := byName(docs, "VaultAuth"), byName(docs, "VaultConnection"), map[string]bool{}, byName(docs, "Deployment")
		dynamic := ofKind(docs, "secrets.hashicorp.com/v1beta1 VaultDynamicSecret")
		if len(dynamic) == 0 {
			t.Fatal("no VaultDynamicSecret")
		}
		for _, a := range auths {
			if _, ok := conns[a.str("spec", "vaultConnectionRef")]; !ok {
				t.Errorf("VaultAuth %s: vaultConnectionRef %q names no VaultConnection of the recipe", a.str("metadata", "name"), a.str("spec", "vaultConnectionRef"))
			}
		}
		restarted := map[string]bool{}
		for _, d := range dynamic {
			name := d.str("metadata", "name")
			if _, ok := auths[d.str("spec", "vaultAuthRef")]; !ok {
				t.Errorf("VaultDynamicSecret %s: vaultAuthRef %q names no VaultAuth of the recipe", name, d.str("spec", "vaultAuthRef"))
			}
			if d.get("spec", "allowStaticCreds") != true || d.get("spec", "destination", "create") != true {
				t.Errorf("VaultDynamicSecret %s: allowStaticCreds and destination.create must be true", name)
			}
			if d.str("spec", "mount") != "auth0" || !strings.HasPrefix(d.str("spec", "path"), "creds/") {
				t.Errorf("VaultDynamicSecret %s: mount %q path %q, want auth0 and creds/<role>", name, d.str("spec", "mount"), d.str("spec", "path"))
			}
			targets, _ := d.get("spec", "rolloutRestartTargets").([]any)
			if len(targets) == 0 {
				t.Errorf("VaultDynamicSecret %s: no rolloutRestartTargets", name)
			}
			for _, x := range targets {
				if tg, _ := x.(map[string]any); tg["kind"] == "Deployment" {
					restarted[fmt.Sprint(tg["name"])] = true
				}
			}
			secrets[d.str("spec", "destination", "name")] = true
		}
		for name, dep := range deployments {
			if !restarted[name] {
				t.Errorf("Deployment %s is no VaultDynamicSecret's rollout restart target", name)
			}
			for _, ref := range secretKeyRefs(t, dep) {
				if !secrets[ref] {
					t.Errorf("Deployment %s takes Secret %q, which no VaultDynamicSecret writes", name, ref)
				}
			}
		}
		sameNamespace(t, docs)
	},
	"csi.md": func(t *testing.T, docs []manifest, values map[string][]byte) {
		classes := byName(docs, "SecretProviderClass")
		pods := byName(docs, "Pod")
		if len(classes) == 0 || len(pods) == 0 {
			t.Fatal("want a SecretProviderClass and a Pod")
		}
		for name, p := range pods {
			var pod corev1.Pod
			if err := yaml.Unmarshal(p.raw, &pod); err != nil {
				t.Fatal(err)
			}
			for _, v := range pod.Spec.Volumes {
				if v.CSI == nil {
					continue
				}
				if _, ok := classes[v.CSI.VolumeAttributes["secretProviderClass"]]; !ok {
					t.Errorf("Pod %s: volume %s names no SecretProviderClass of the recipe", name, v.Name)
				}
			}
		}
		for name, c := range classes {
			objects, _ := vaultObjects(c.str("spec", "parameters", "objects"))
			for _, o := range objects {
				if !strings.HasPrefix(o.SecretPath, "auth0/creds/") || o.Method != "" {
					t.Errorf("SecretProviderClass %s: object %s reads %s %s, want a GET of auth0/creds/<role>", name, o.ObjectName, o.Method, o.SecretPath)
				}
			}
		}
		var v struct {
			EnableSecretRotation bool   `json:"enableSecretRotation"`
			RotationPollInterval string `json:"rotationPollInterval"`
		}
		if err := yaml.Unmarshal(values["csi-driver-values"], &v); err != nil {
			t.Fatal(err)
		}
		if d, err := time.ParseDuration(v.RotationPollInterval); !v.EnableSecretRotation || err != nil || d <= 0 {
			t.Errorf("the driver's values turn rotation on with a poll interval: enableSecretRotation %v, rotationPollInterval %q", v.EnableSecretRotation, v.RotationPollInterval)
		}
		sameNamespace(t, docs)
	},
	"eso.md": func(t *testing.T, docs []manifest, _ map[string][]byte) {
		generators := byName(docs, "VaultDynamicSecret")
		externals := byName(docs, "ExternalSecret")
		if len(generators) == 0 || len(externals) == 0 {
			t.Fatal("want a VaultDynamicSecret and an ExternalSecret")
		}
		used := map[string]bool{}
		for name, e := range externals {
			var es esv1.ExternalSecret
			if err := yaml.Unmarshal(e.raw, &es); err != nil {
				t.Fatal(err)
			}
			if es.Spec.RefreshInterval == nil || es.Spec.RefreshInterval.Duration <= 0 {
				t.Errorf("ExternalSecret %s: refreshInterval must be set and positive (0 reads once)", name)
			}
			for _, df := range es.Spec.DataFrom {
				ref := df.SourceRef
				if ref == nil || ref.GeneratorRef == nil {
					t.Errorf("ExternalSecret %s: a dataFrom entry without sourceRef.generatorRef", name)
					continue
				}
				g, ok := generators[ref.GeneratorRef.Name]
				if !ok || ref.GeneratorRef.Kind != "VaultDynamicSecret" || ref.GeneratorRef.APIVersion != g.str("apiVersion") {
					t.Errorf("ExternalSecret %s: generatorRef %+v names no generator of the recipe", name, *ref.GeneratorRef)
				}
				used[ref.GeneratorRef.Name] = true
			}
		}
		for name, g := range generators {
			if !used[name] {
				t.Errorf("VaultDynamicSecret %s: no ExternalSecret uses it", name)
			}
			if !strings.HasPrefix(g.str("spec", "path"), "auth0/creds/") || g.str("spec", "method") != "GET" {
				t.Errorf("VaultDynamicSecret %s: %s %s, want GET auth0/creds/<role>", name, g.str("spec", "method"), g.str("spec", "path"))
			}
		}
		sameNamespace(t, docs)
	},
}

func ofKind(docs []manifest, kind string) []manifest {
	var out []manifest
	for _, d := range docs {
		if d.kind() == kind {
			out = append(out, d)
		}
	}
	return out
}

// byName returns the documents whose kind is kind (any apiVersion), by name.
func byName(docs []manifest, kind string) map[string]manifest {
	out := map[string]manifest{}
	for _, d := range docs {
		if d.obj["kind"] == kind {
			out[d.str("metadata", "name")] = d
		}
	}
	return out
}

// secretKeyRefs returns the Secrets a Deployment's containers take variables from.
func secretKeyRefs(t *testing.T, d manifest) []string {
	var dep appsv1.Deployment
	if err := yaml.Unmarshal(d.raw, &dep); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range dep.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out = append(out, e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	return out
}

// sameNamespace: the references checked are namespaced, so every document is in one.
func sameNamespace(t *testing.T, docs []manifest) {
	t.Helper()
	for _, d := range docs {
		if ns := d.str("metadata", "namespace"); ns == "" || ns != docs[0].str("metadata", "namespace") {
			t.Errorf("%s %s: namespace %q, want every document in %q", d.kind(), d.str("metadata", "name"), ns, docs[0].str("metadata", "namespace"))
		}
	}
}

// freeForm are the maps whose keys are data, not fields: misspelling one is no error.
var freeForm = []string{"labels", "annotations", "matchLabels", "params", "headers"}

// TestMisspeltFieldsFail shows that the checks above are strict: each field of each
// manifest (and of each Vault provider object, and each Helm value), renamed as if
// misspelt, makes them fail.
func TestMisspeltFieldsFail(t *testing.T) {
	for _, file := range recipeFiles {
		t.Run(file, func(t *testing.T) {
			docs, values := readRecipe(t, file)
			n := 0
			for _, m := range docs {
				before := n
				for path, mutated := range misspellings(m.obj, "") {
					n++
					raw, err := yaml.Marshal(mutated)
					if err != nil {
						t.Fatal(err)
					}
					if checkManifest(raw) == nil {
						t.Errorf("block %s, %s %s: misspelling %s passes", m.block, m.kind(), m.str("metadata", "name"), path)
					}
				}
				if n == before {
					t.Errorf("block %s: nothing to misspell", m.block)
				}
			}
			for name, v := range values {
				var tree map[string]any
				if err := yaml.Unmarshal(v, &tree); err != nil {
					t.Fatal(err)
				}
				for path, mutated := range misspellings(tree, "") {
					n++
					raw, err := yaml.Marshal(mutated)
					if err != nil {
						t.Fatal(err)
					}
					if checkHelmValues(raw, helmValues[name].module, helmValues[name].file) == nil {
						t.Errorf("block %s: misspelling %s passes", name, path)
					}
				}
			}
			t.Logf("%d misspellings, each refused unless reported above", n)
		})
	}
}

// misspellings returns, by the path of the field renamed, copies of v with one field name
// misspelt: every key of every object, except the keys of free-form maps. The Vault
// provider's objects parameter, YAML in a string, is misspelt inside.
func misspellings(v any, path string) map[string]any {
	out := map[string]any{}
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			p := strings.TrimPrefix(path+"."+k, ".")
			if !slices.Contains(freeForm, lastName(path)) {
				for _, typo := range typos(k) {
					out[p+" -> "+typo] = with(x, k, typo, x[k])
				}
			}
			if s, ok := x[k].(string); ok && k == "objects" && lastName(path) == "parameters" {
				var list any
				if yaml.Unmarshal([]byte(s), &list) == nil {
					for sp, sub := range misspellings(list, p) {
						b, _ := yaml.Marshal(sub)
						out[sp] = with(x, k, k, string(b))
					}
				}
				continue
			}
			for sp, sub := range misspellings(x[k], p) {
				out[sp] = with(x, k, k, sub)
			}
		}
	case []any:
		for i, e := range x {
			for sp, sub := range misspellings(e, fmt.Sprintf("%s[%d]", path, i)) {
				c := slices.Clone(x)
				c[i] = sub
				out[sp] = c
			}
		}
	}
	return out
}

// typos are misspellings of a field name: a letter too many, and the same letters in
// another case (a case-insensitive decoder would still take it).
func typos(name string) []string {
	other := strings.ToLower(name)
	if other == name {
		other = strings.ToUpper(name[:1]) + name[1:]
	}
	return []string{name + "x", other}
}

// with returns a copy of m with key from replaced by key to holding v.
func with(m map[string]any, from, to string, v any) map[string]any {
	c := make(map[string]any, len(m))
	for k, x := range m {
		if k != from {
			c[k] = x
		}
	}
	c[to] = v
	return c
}

// lastName is the last field name of a path ("a.b[2]" -> "b").
func lastName(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		path = path[i+1:]
	}
	if i := strings.IndexByte(path, '['); i >= 0 {
		path = path[:i]
	}
	return path
}
