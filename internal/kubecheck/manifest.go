package kubecheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Manifests are the objects of one or more manifest files.
type Manifests struct {
	Workloads  []Workload
	ConfigMaps map[string]map[string]string // name: data
}

// Workload is an object that runs pods: a Pod, or a controller's pod
// template.
type Workload struct {
	Kind, Name string
	// Source is the file and document it came from, for messages.
	Source string
	Pod    PodSpec
}

func (w Workload) String() string { return strings.ToLower(w.Kind) + "/" + w.Name }

// PodSpec and what follows mirror the Kubernetes API's fields that the
// checks read, under the API's JSON names.
type PodSpec struct {
	TerminationGracePeriodSeconds *int64      `json:"terminationGracePeriodSeconds"`
	Containers                    []Container `json:"containers"`
	Volumes                       []Volume    `json:"volumes"`
	ShareProcessNamespace         *bool       `json:"shareProcessNamespace"`
}

type Container struct {
	Name           string          `json:"name"`
	Image          string          `json:"image"`
	Command        []string        `json:"command"`
	Args           []string        `json:"args"`
	Env            []EnvVar        `json:"env"`
	Ports          []ContainerPort `json:"ports"`
	LivenessProbe  *Probe          `json:"livenessProbe"`
	ReadinessProbe *Probe          `json:"readinessProbe"`
	StartupProbe   *Probe          `json:"startupProbe"`
	Lifecycle      *Lifecycle      `json:"lifecycle"`
	VolumeMounts   []VolumeMount   `json:"volumeMounts"`
}

type EnvVar struct {
	Name      string          `json:"name"`
	Value     string          `json:"value"`
	ValueFrom json.RawMessage `json:"valueFrom"`
}

type ContainerPort struct {
	Name          string `json:"name"`
	ContainerPort int32  `json:"containerPort"`
}

type Probe struct {
	HTTPGet   *HTTPGetAction   `json:"httpGet"`
	TCPSocket *TCPSocketAction `json:"tcpSocket"`
	Exec      *ExecAction      `json:"exec"`
	GRPC      json.RawMessage  `json:"grpc"`
}

type HTTPGetAction struct {
	Path   string      `json:"path"`
	Port   IntOrString `json:"port"`
	Host   string      `json:"host"`
	Scheme string      `json:"scheme"`
}

type TCPSocketAction struct {
	Port IntOrString `json:"port"`
}

type ExecAction struct {
	Command []string `json:"command"`
}

type Lifecycle struct {
	PreStop *LifecycleHandler `json:"preStop"`
}

type LifecycleHandler struct {
	Exec    *ExecAction    `json:"exec"`
	HTTPGet *HTTPGetAction `json:"httpGet"`
	Sleep   *SleepAction   `json:"sleep"`
}

type SleepAction struct {
	Seconds int64 `json:"seconds"`
}

type Volume struct {
	Name      string           `json:"name"`
	ConfigMap *ConfigMapSource `json:"configMap"`
}

type ConfigMapSource struct {
	Name  string      `json:"name"`
	Items []KeyToPath `json:"items"`
}

type KeyToPath struct {
	Key  string `json:"key"`
	Path string `json:"path"`
}

type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	SubPath   string `json:"subPath"`
}

// IntOrString is a port by number or by name.
type IntOrString struct {
	Int int32
	Str string
}

func (p *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &p.Str)
	}
	return json.Unmarshal(b, &p.Int)
}

func (p IntOrString) String() string {
	if p.Str != "" {
		return strconv.Quote(p.Str)
	}
	return strconv.Itoa(int(p.Int))
}

// object is one document, as far as the checks care.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec  json.RawMessage   `json:"spec"`
	Data  map[string]string `json:"data"`
	Items []json.RawMessage `json:"items"`
}

// Parse reads the documents of one manifest file (YAML or JSON, several
// documents separated by ---, or a List) into m. Kinds without pods are
// skipped; a document that does not parse is an error naming the file and
// the document.
func (m *Manifests) Parse(file string, data []byte) error {
	for i, doc := range splitDocuments(data) {
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", file, i+1, err)
		}
		if err := m.add(fmt.Sprintf("%s: document %d", file, i+1), j); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifests) add(source string, j []byte) error {
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return nil // an empty document
	}
	var o object
	if err := json.Unmarshal(j, &o); err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	var pod PodSpec
	var err error
	switch o.Kind {
	case "List":
		for k, item := range o.Items {
			if err := m.add(fmt.Sprintf("%s: item %d", source, k+1), item); err != nil {
				return err
			}
		}
		return nil
	case "ConfigMap":
		if m.ConfigMaps == nil {
			m.ConfigMaps = map[string]map[string]string{}
		}
		m.ConfigMaps[o.Metadata.Name] = o.Data
		return nil
	case "Pod":
		err = json.Unmarshal(o.Spec, &pod)
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		var spec struct {
			Template struct {
				Spec PodSpec `json:"spec"`
			} `json:"template"`
		}
		err = json.Unmarshal(o.Spec, &spec)
		pod = spec.Template.Spec
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", source, o.Kind, o.Metadata.Name, err)
	}
	m.Workloads = append(m.Workloads, Workload{Kind: o.Kind, Name: o.Metadata.Name, Source: source, Pod: pod})
	return nil
}

// splitDocuments splits a YAML stream at its "---" lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("---")); ok && len(bytes.TrimSpace(bytes.SplitN(rest, []byte("#"), 2)[0])) == 0 {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	docs = append(docs, cur)
	var out [][]byte
	for _, d := range docs {
		if len(bytes.TrimSpace(d)) > 0 {
			out = append(out, d)
		}
	}
	return out
}
