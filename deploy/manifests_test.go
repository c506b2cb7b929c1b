package deploy

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/health"
	"github.com/batonhq/baton/internal/kubecheck"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// shipped are the manifests, decoded strictly.
type shipped struct {
	configMap  *corev1.ConfigMap
	deployment *appsv1.Deployment
	service    *corev1.Service
	pdb        *policyv1.PodDisruptionBudget
}

// decodeStrict decodes one document into the API type its kind names:
// an unknown or duplicate field, or a value of the wrong type, is an error.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "policy/v1 PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	default:
		return nil, fmt.Errorf("unexpected apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func loadManifests(t *testing.T) shipped {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var s shipped
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i+1, err)
			}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				s.configMap = o
			case *corev1.Service:
				s.service = o
			case *appsv1.Deployment:
				s.deployment = o
			case *policyv1.PodDisruptionBudget:
				s.pdb = o
			}
		}
	}
	if s.configMap == nil || s.deployment == nil || s.service == nil || s.pdb == nil {
		t.Fatalf("want a ConfigMap, a Deployment, a Service and a PodDisruptionBudget in %v", files)
	}
	return s
}

func TestManifestsDecodeStrictly(t *testing.T) {
	loadManifests(t)
	// Strict means strict: a misspelt field is an error, not a default.
	data, err := os.ReadFile("kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	typo := bytes.Replace(data, []byte("terminationGracePeriodSeconds:"), []byte("terminationGracePeriod:"), 1)
	if _, err := decodeStrict(typo); err == nil || !strings.Contains(err.Error(), `unknown field "terminationGracePeriod"`) {
		t.Errorf("a misspelt field decoded: %v", err)
	}
}

// runConfig is the config baton runs with in the pod: the ConfigMap's
// file under the container's args and literal BATON_* env.
func runConfig(t *testing.T, s shipped) *config.Config {
	t.Helper()
	c := batonContainer(t, s)
	p := filepath.Join(t.TempDir(), "baton.toml")
	if err := os.WriteFile(p, []byte(s.configMap.Data["baton.toml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	flags := config.BindFlags(fs)
	fs.String("log-format", "auto", "")
	if err := fs.Parse(c.Args); err != nil {
		t.Fatal(err)
	}
	if err := fs.Set("config", p); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if err := flags.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	cfg, err := flags.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func batonContainer(t *testing.T, s shipped) corev1.Container {
	t.Helper()
	cs := s.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "baton" {
		t.Fatalf("want one container called baton: %+v", cs)
	}
	return cs[0]
}

func port(t *testing.T, cfg *config.Config, socket string) int32 {
	t.Helper()
	for _, s := range cfg.Sockets {
		if s.Name == socket {
			ap, err := netip.ParseAddrPort(s.Address.Addr)
			if err != nil {
				t.Fatalf("socket %s: %v", socket, err)
			}
			if !ap.Addr().IsUnspecified() {
				t.Errorf("socket %s listens on %s: the kubelet and Services reach the pod's IP", socket, s.Address)
			}
			return int32(ap.Port())
		}
	}
	t.Fatalf("no socket %s in the config", socket)
	return 0
}

func TestManifestsMatchBaton(t *testing.T) {
	s := loadManifests(t)
	// One config: the image's default is the ConfigMap's.
	image, err := os.ReadFile("baton.toml")
	if err != nil {
		t.Fatal(err)
	}
	if s.configMap.Data["baton.toml"] != string(image) {
		t.Errorf("the ConfigMap's baton.toml differs from deploy/baton.toml, the image's")
	}
	cfg := runConfig(t, s)
	c := batonContainer(t, s)
	pod := s.deployment.Spec.Template.Spec

	// The config reaches the container where its args say.
	if strings.Join(c.Args, " ") != "--config /etc/baton/baton.toml" {
		t.Errorf("args %q", c.Args)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if m.Name == v.Name && m.MountPath == "/etc/baton" && v.ConfigMap != nil && v.ConfigMap.Name == s.configMap.Name {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("ConfigMap %s is not mounted at /etc/baton", s.configMap.Name)
	}

	// Ports: the container's named ports are baton's sockets.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if cfg.MetricsSocket != "metrics" {
		t.Fatalf("metrics-socket %q", cfg.MetricsSocket)
	}
	if ports["http"] != port(t, cfg, "web") || ports["metrics"] != port(t, cfg, "metrics") {
		t.Errorf("container ports %v, sockets web %d metrics %d", ports, port(t, cfg, "web"), port(t, cfg, "metrics"))
	}
	// Probes: baton's paths, on the metrics socket.
	named := func(p intstr.IntOrString) int32 {
		if p.Type == intstr.String {
			return ports[p.StrVal]
		}
		return p.IntVal
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, health.ReadyPath}, {"liveness", c.LivenessProbe, health.LivePath}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s httpGet probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || named(p.probe.HTTPGet.Port) != port(t, cfg, "metrics") {
			t.Errorf("%s probe %s on %d, want %s on the metrics socket %d", p.name, p.probe.HTTPGet.Path, named(p.probe.HTTPGet.Port), p.path, port(t, cfg, "metrics"))
		}
		// The probe's own deadline leaves room for baton's.
		if time.Duration(p.probe.TimeoutSeconds)*time.Second <= health.LiveDeadline {
			t.Errorf("%s probe timeoutSeconds %d is not above baton's %s", p.name, p.probe.TimeoutSeconds, health.LiveDeadline)
		}
	}
	// The grace period covers the drain.
	need := cfg.DrainDelay + cfg.GracefulTimeout + kubecheck.Margin
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %v < drain-delay %s + graceful-timeout %s + %s", pod.TerminationGracePeriodSeconds, cfg.DrainDelay, cfg.GracefulTimeout, kubecheck.Margin)
	}
	if cfg.DrainDelay == 0 {
		t.Errorf("no drain-delay: endpoints are removed while workers already stop")
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		t.Errorf("a preStop hook beside drain-delay")
	}

	// The Service and the budget select these pods; the Service reaches
	// the web socket.
	labels := s.deployment.Spec.Template.Labels
	for what, sel := range map[string]map[string]string{
		"deployment": s.deployment.Spec.Selector.MatchLabels, "service": s.service.Spec.Selector, "pdb": s.pdb.Spec.Selector.MatchLabels,
	} {
		if len(sel) == 0 {
			t.Errorf("%s selects nothing", what)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selector %s=%s does not match the pod's labels %v", what, k, v, labels)
			}
		}
	}
	if len(s.service.Spec.Ports) != 1 || named(s.service.Spec.Ports[0].TargetPort) != port(t, cfg, "web") {
		t.Errorf("service ports %+v do not reach the web socket", s.service.Spec.Ports)
	}
	if s.pdb.Spec.MaxUnavailable == nil && s.pdb.Spec.MinAvailable == nil {
		t.Errorf("the budget allows nothing")
	}

	// Non-root, as the image's USER, on a read-only root with a
	// writable /tmp for baton's runtime directory.
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != imageUID(t) {
		t.Errorf("pod securityContext %+v, want runAsNonRoot and runAsUser %d (the image's USER)", sc, imageUID(t))
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("no read-only root filesystem")
	}
	tmp := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if m.Name == v.Name && m.MountPath == "/tmp" && v.EmptyDir != nil {
				tmp = true
			}
		}
	}
	if !tmp {
		t.Errorf("no emptyDir at /tmp, where baton makes its runtime directory")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
}

// TestManifestsPassBatonCheck runs the same checks as baton check
// --kubernetes on the shipped files.
func TestManifestsPassBatonCheck(t *testing.T) {
	var m kubecheck.Manifests
	for _, f := range []string{"kubernetes/deployment.yaml", "kubernetes/configmap.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Parse(f, data); err != nil {
			t.Fatal(err)
		}
	}
	findings, err := kubecheck.Check(&m, kubecheck.Options{Bind: func(fs *pflag.FlagSet) *config.Flags {
		f := config.BindFlags(fs)
		fs.String("log-format", "auto", "")
		return f
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Error(f)
	}
}
