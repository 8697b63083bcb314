package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// A configuration file is etcd's YAML (embed.Config's keys): a key is a
// flag's name, with a few exceptions that configFileSections and
// configFileKeys list. Every value goes through the flag it names, so a
// file and a command line are checked by the same code. As in etcd,
// durations other than heartbeat-interval and election-timeout
// (milliseconds) are integer nanoseconds, lists are YAML sequences, and a
// key etcd does not know is ignored (cairn reports it).

// configFileSections map the keys of etcd's nested sections to flags.
var configFileSections = map[string]map[string]string{
	"client-transport-security": {
		"cert-file": "cert-file", "key-file": "key-file", "client-cert-file": "client-cert-file",
		"client-key-file": "client-key-file", "client-cert-auth": "client-cert-auth",
		"trusted-ca-file": "trusted-ca-file", "auto-tls": "auto-tls",
		"allowed-hostname": "client-cert-allowed-hostname",
	},
	"peer-transport-security": {
		"cert-file": "peer-cert-file", "key-file": "peer-key-file", "client-cert-file": "peer-client-cert-file",
		"client-key-file": "peer-client-key-file", "client-cert-auth": "peer-client-cert-auth",
		"trusted-ca-file": "peer-trusted-ca-file", "auto-tls": "peer-auto-tls",
		"allowed-cn": "peer-cert-allowed-cn", "allowed-hostname": "peer-cert-allowed-hostname",
		"skip-client-san-verification": "peer-skip-client-san-verification",
	},
	"socket-options": {"reuse-port": "socket-reuse-port", "reuse-address": "socket-reuse-address"},
	// etcd's v3 discovery settings (DiscoveryConfig): cairn refuses them.
	"discovery-config": {
		"endpoints": "discovery-endpoints", "token": "discovery-token",
		"dial-timeout": "discovery-dial-timeout", "request-timeout": "discovery-request-timeout",
		"keepalive-time": "discovery-keepalive-time", "keepalive-timeout": "discovery-keepalive-timeout",
		"insecure-transport": "discovery-insecure-transport", "insecure-skip-tls-verify": "discovery-insecure-skip-tls-verify",
		"cert": "discovery-cert", "key": "discovery-key", "cacert": "discovery-cacert",
		"user": "discovery-user", "password": "discovery-password",
	},
}

// configFileOnlyFlags are flags a configuration file cannot set.
var configFileOnlyFlags = []string{"check-config", "config-file", "version"}

// applyConfigFile sets fs's flags from the configuration file at path.
func applyConfigFile(fs *flag.FlagSet, path string) (notices []string, err error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	settings, err := decodeConfigFile(text)
	if err != nil {
		return nil, err
	}
	for _, key := range sortedKeysOf(settings) {
		value := settings[key]
		if section, ok := configFileSections[key]; ok {
			sectionNotices, err := applyConfigSection(fs, key, section, value)
			if err != nil {
				return nil, err
			}
			notices = append(notices, sectionNotices...)
			continue
		}
		if fs.Lookup(key) == nil || slices.Contains(configFileOnlyFlags, key) {
			notices = append(notices, fmt.Sprintf("configuration key %q is not one of etcd's; ignored", key))
			continue
		}
		if err := setFromConfig(fs, key, key, value); err != nil {
			return nil, err
		}
	}
	return notices, nil
}

// decodeConfigFile reads YAML into a map, keeping numbers exact (a
// duration's nanoseconds do not survive a float64).
func decodeConfigFile(text []byte) (map[string]any, error) {
	js, err := yaml.YAMLToJSON(text)
	if err != nil {
		return nil, err
	}
	settings := map[string]any{}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return settings, nil // an empty file
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&settings); err != nil {
		return nil, fmt.Errorf("not a YAML mapping of etcd's configuration keys: %w", err)
	}
	return settings, nil
}

func applyConfigSection(fs *flag.FlagSet, section string, flags map[string]string, value any) (notices []string, err error) {
	if value == nil {
		return nil, nil
	}
	fields, ok := value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("invalid %s", section)
	}
	for _, key := range sortedKeysOf(fields) {
		name, ok := flags[key]
		if !ok {
			notices = append(notices, fmt.Sprintf("configuration key %q in %s is not one of etcd's; ignored", key, section))
			continue
		}
		if err := setFromConfig(fs, section+"."+key, name, fields[key]); err != nil {
			return nil, err
		}
	}
	return notices, nil
}

// setFromConfig sets flag name from the value of configuration key key.
// A null value (a key written without a value) leaves the default.
func setFromConfig(fs *flag.FlagSet, key, name string, value any) error {
	if value == nil {
		return nil
	}
	f := fs.Lookup(name)
	text, err := configValueText(flagKind(f), value)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if text == "" && flagKind(f) != kindString {
		return nil
	}
	if err := fs.Set(name, text); err != nil {
		return fmt.Errorf("%s: invalid value %q: %w", key, text, err)
	}
	return nil
}

// configValueText writes a decoded YAML value as the flag's text.
func configValueText(kind valueKind, value any) (string, error) {
	switch v := value.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case json.Number:
		if kind == kindDuration {
			ns, err := v.Int64()
			if err != nil {
				return "", fmt.Errorf("%s is not a duration in integer nanoseconds", v)
			}
			return time.Duration(ns).String(), nil
		}
		return v.String(), nil
	case []any:
		items := make([]string, 0, len(v))
		for _, item := range v {
			s, err := configValueText(kindString, item)
			if err != nil {
				return "", err
			}
			items = append(items, s)
		}
		return strings.Join(items, ","), nil
	}
	return "", fmt.Errorf("unexpected value %v", value)
}

func sortedKeysOf(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
