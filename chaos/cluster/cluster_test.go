package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidation(t *testing.T) {
	valid := Config{Kind: KindCairn, Bin: "/bin/true", Members: 3}
	valid.ensureDefaults()
	if err := valid.validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if valid.HeartbeatInterval != 50*time.Millisecond || valid.ElectionTimeout != 500*time.Millisecond || valid.Token != "chaos" ||
		valid.LogLevel != "info" || strings.Join(valid.Names, ",") != "m1,m2,m3" {
		t.Fatalf("defaults %+v", valid)
	}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Kind = "zookeeper" }, "unknown kind"},
		{func(c *Config) { c.Members = 0 }, "members"},
		{func(c *Config) { c.Members = membersMax + 1 }, "members"},
		{func(c *Config) { c.Bin = "/nonexistent/cairn" }, "not an executable"},
		{func(c *Config) { c.ElectionTimeout = 100 * time.Millisecond }, "election timeout"},
		{func(c *Config) { c.Names = []string{"a", "b"} }, "2 names for 3 members"},
		{func(c *Config) { c.Ports = []MemberPorts{{2379, 2380}} }, "1 port pairs for 3 members"},
		{func(c *Config) { c.Direct, c.DiskBytes = true, 1<<20 }, "Direct"},
	} {
		cfg := valid
		tc.change(&cfg)
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validate() = %v, want an error mentioning %q", err, tc.want)
		}
	}
}
