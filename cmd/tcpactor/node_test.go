package main

import (
	"io"
	"testing"
)

// TestNodeRemoteAdminAllowsRemoteAdministrationOfItsServers: `node
// --remote-admin` gives the option to the server --listen runs, alone or as
// the cluster kind's activations (crossnode runs the single server across
// processes); without --listen there is no server to give it to.
func TestNodeRemoteAdminAllowsRemoteAdministrationOfItsServers(t *testing.T) {
	for _, c := range []struct {
		args  []string
		allow bool
	}{
		{[]string{"--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0"}, false},
		{[]string{"--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--remote-admin"}, true},
		{[]string{"--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--remote-admin",
			"--cluster", "c", "--members", "127.0.0.1:1", "--health-port", "1"}, true},
	} {
		cfg, err := parseNode(c.args, io.Discard)
		if err != nil {
			t.Fatalf("node %q: %v", c.args, err)
		}
		n := &runningNode{cfg: cfg}
		if got := n.serverOptions().AllowRemoteAdmin; got != c.allow {
			t.Errorf("node %q: the server's AllowRemoteAdmin = %v, want %v", c.args, got, c.allow)
		}
		if got := n.clusterServerConfig().Options.AllowRemoteAdmin; got != c.allow {
			t.Errorf("node %q: the cluster kind's AllowRemoteAdmin = %v, want %v", c.args, got, c.allow)
		}
	}
	if _, err := parseNode([]string{"--remote", "127.0.0.1:0", "--remote-admin"}, io.Discard); err == nil {
		t.Error("node --remote-admin without --listen: accepted, want a usage error")
	}
}
