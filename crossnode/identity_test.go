package crossnode

import (
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/remotecfg"
	"github.com/tcpactor/tcpactor/messages"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// With mutual TLS, the node a stream announces must be at a host its
// certificate names: a holder of any certificate of the cluster's CA cannot
// pass for another node.

// TestTLSNodeHearsAPeerOnlyAtAHostItsCertificateNames: `tcpactor status`
// processes with certificates for one host ask a TLS server: announcing a
// node on a host the certificate names (an IP, or a DNS name with
// --advertise) they are served; announcing one on another host (a certificate
// for 127.0.0.2 on 127.0.0.3; a certificate for the name localhost on
// 127.0.0.1) their stream is refused and counted as forged, and the server
// goes on serving.
func TestTLSNodeHearsAPeerOnlyAtAHostItsCertificateNames(t *testing.T) {
	bin := buildTCPActor(t)
	ca := newTestCA(t, "cluster")
	p := startServe(t, append([]string{"--handler", "echo", "--name", "echo"}, ca.issue("server").args()...)...)
	nodeB, named := ca.issueFor("node-b", "127.0.0.2"), ca.issueFor("named", "localhost")
	for _, c := range []struct {
		name   string
		cert   nodeCert
		flags  []string
		served bool
	}{
		{"certificate for 127.0.0.2, node on 127.0.0.2", nodeB, []string{"--remote", "127.0.0.2:0"}, true},
		{"certificate for 127.0.0.2, node on 127.0.0.3", nodeB, []string{"--remote", "127.0.0.3:0"}, false},
		{"certificate for localhost, node advertised as localhost", named, []string{"--remote", hostport(freePort(t)), "--advertise", "localhost"}, true},
		{"certificate for localhost, node on 127.0.0.1", named, []string{"--remote", "127.0.0.1:0"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			forged := refusals(t, p.metrics, "forged")
			st, err := statusOf(t, bin, p.remote, 3*time.Second, append(c.flags, c.cert.args()...)...)
			switch {
			case c.served && err != nil:
				t.Fatalf("status: %v", err)
			case c.served && st["listening"] != true:
				t.Fatalf("status: %v, want listening", st)
			case c.served:
				if n := refusals(t, p.metrics, "forged"); n != forged {
					t.Fatalf("the server refused %d forged messages, want none", n-forged)
				}
			case err == nil:
				t.Fatalf("a peer announcing a host its certificate does not name was answered: %v", st)
			case !strings.Contains(err.Error(), "no answer"):
				t.Fatalf("status failed with %v, want no answer", err)
			default:
				awaitRefusals(t, p, "forged", forged+1)
			}
			echoes(t, p.addr)
		})
	}
}

// connIDPattern finds the connection's actor name in a `node --watch` line
// (the PID in protobuf text format).
var connIDPattern = regexp.MustCompile(`Id:\s*"([^"]+)"`)

// TestTLSPeerCannotPassForAnotherNode: node C (`tcpactor handle`, a
// certificate for 127.0.0.3, on 127.0.0.3) serves a TLS server's client.
// Peer B holds a good certificate of the same CA, for 127.0.0.2 only, and
// announces node C's address to act as C (here, to Abort C's connection,
// which the connection takes only from its owner's node): the server ends
// the stream with PermissionDenied and counts it as forged, the Abort it sent
// after its announcement is not delivered, and C's client is still served. Announcing its own host, B is heard, as itself: the
// connection refuses it.
func TestTLSPeerCannotPassForAnotherNode(t *testing.T) {
	bin := buildTCPActor(t)
	ca := newTestCA(t, "cluster")
	p := startServe(t, append([]string{"--handler", "none"}, ca.issue("server").args()...)...)
	target := p.remote + "/" + p.pid.Id

	c := startCommand(t, bin, "node C", "handle", append([]string{"--server", target, "--remote", "127.0.0.3:0"},
		ca.issueFor("node-c", "127.0.0.3").args()...)...)
	line, _ := c.waitLine("remote on ", time.Time{}, 20*time.Second)
	nodeC := addrAfter(line, "remote on ")
	// A subscriber, to learn the connection's PID as every subscriber does.
	w := startNode(t, bin, "watcher", append([]string{"--remote", "127.0.0.1:0", "--watch", target}, ca.issue("watcher").args()...)...)
	w.waitLine("watching ", time.Time{}, 20*time.Second)

	client, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	echoOn(t, client, "served by node C")
	line, _ = w.waitLine("watch: new connection ", time.Time{}, 10*time.Second)
	m := connIDPattern.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no connection PID in %q", line)
	}
	conn := actor.NewPID(p.remote, m[1])

	b := ca.issueFor("node-b", "127.0.0.2")
	_, creds, err := remotecfg.TLSFiles{CertFile: b.cert, KeyFile: b.key, CAFile: b.ca}.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	forged := refusals(t, p.metrics, "forged")
	impostor := dialRawWith(t, p.remote, creds)
	impostor.announce(nodeC)                    // answered, as the pinned remote's writer needs (remotenode/guard_authz.go)
	impostor.send(conn, &messages.Abort{}, nil) // heard as node C, it would reset C's client
	if err := impostor.ended(10 * time.Second); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a peer with a certificate for 127.0.0.2 announced node C (%s): the stream ended with %v, want PermissionDenied", nodeC, err)
	}
	awaitRefusals(t, p, "forged", forged+1)
	echoOn(t, client, "still served by node C")

	honest := dialRawWith(t, p.remote, creds)
	honest.announce("127.0.0.2:1")
	refused := refusals(t, p.metrics, "connection")
	honest.send(conn, &messages.Abort{}, nil)
	awaitRefusals(t, p, "connection", refused+1)
	echoOn(t, client, "and not aborted by node B")
	if n := refusals(t, p.metrics, "forged"); n != forged+1 {
		t.Fatalf("the server counted %d forged refusals, want %d", n, forged+1)
	}
}
