package crossnode

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// serverAndHandler starts a server node and an echo handler node (two
// processes) and returns them with the server's listen address.
func serverAndHandler(t *testing.T, bin string, handlerArgs ...string) (srv, handler *nodeProc, addr string) {
	t.Helper()
	srv = startNode(t, bin, "server", "--remote", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--name", "echo",
		"--debug-addr", "127.0.0.1:0", "--log-level", logLevel())
	line, _ := srv.waitLine("listening on ", time.Time{}, 10*time.Second)
	addr = addrAfter(line, "listening on ")
	rline, _ := srv.waitLine("remote on ", time.Time{}, 10*time.Second)
	dline, _ := srv.waitLine("debug on ", time.Time{}, 10*time.Second)
	srv.debug = addrAfter(dline, "debug on ")
	args := append([]string{"--remote", "127.0.0.1:0", "--handler", "echo",
		"--server", addrAfter(rline, "remote on ") + "/echo"}, handlerArgs...)
	handler = startNode(t, bin, "handler", args...)
	handler.waitLine("owner: subscribed to ", time.Time{}, 10*time.Second)
	return srv, handler, addr
}

// TestHandlerInAnotherProcessEchoes64MiBOver64ConnectionsByteExact serves
// 64 connections accepted by one process from an owner-actor echo handler in
// another: 1 MiB of random bytes each way per connection, compared byte for
// byte. Credit and write acknowledgements cross the processes.
func TestHandlerInAnotherProcessEchoes64MiBOver64ConnectionsByteExact(t *testing.T) {
	bin := buildTCPActor(t)
	_, handler, addr := serverAndHandler(t, bin)
	defer func() {
		if t.Failed() {
			t.Logf("handler output:\n%s", handler.output())
		}
	}()
	const conns, size = 64, 1 << 20
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			data := make([]byte, size)
			_, _ = rand.Read(data)
			if err := echoRoundTrip(t, c, data); err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d MiB echoed through a handler in another process in %v", conns*size>>20, time.Since(start))
}

// The helper process: a node that sends a message of a protobuf type only it
// knows (built with dynamicpb from a made-up descriptor).
const unknownTarget = "CROSSNODE_UNKNOWN_TARGET"

// TestHelperSendsAMessageTypeTheReceiverDoesNotKnow is not a test: it is
// the body of the child process of TestNodeSurvivesAMessageTypeItDoesNotKnow.
func TestHelperSendsAMessageTypeTheReceiverDoesNotKnow(t *testing.T) {
	target := os.Getenv(unknownTarget)
	if target == "" {
		t.Skip("helper process of TestNodeSurvivesAMessageTypeItDoesNotKnow")
	}
	msg, err := unknownMessage()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	sys := actor.NewActorSystem(testkit.SystemOptions()...)
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", 0))
	r.Start()
	addr, id, _ := strings.Cut(target, "/")
	pid := actor.NewPID(addr, id)
	sys.Root.Send(pid, msg)
	_, _ = sys.Root.RequestFuture(pid, msg, 2*time.Second).Result() // never answered
	os.Exit(0)                                                      // skip RunTests' leak check: this process only sends
}

// unknownMessage is a message of type crossnode.Unknown, which no tcpactor
// binary links.
func unknownMessage() (proto.Message, error) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("crossnode/unknown.proto"),
		Package: proto.String("crossnode"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Unknown"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("text"), Number: proto.Int32(1), JsonName: proto.String("text"),
				Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type:  descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		return nil, err
	}
	m := dynamicpb.NewMessage(fd.Messages().Get(0))
	m.Set(fd.Messages().Get(0).Fields().Get(0), protoreflectString("who reads me?"))
	return m, nil
}

// TestNodeSurvivesAMessageTypeItDoesNotKnow sends a `tcpactor node` a
// message of a protobuf type its binary does not link, from another process.
// At the pinned Proto.Actor this crashes an unguarded receiver (nil pointer in
// the remote's proto serializer); tcpactor's remote guard drops the message
// and the node goes on serving across processes.
func TestNodeSurvivesAMessageTypeItDoesNotKnow(t *testing.T) {
	bin := buildTCPActor(t)
	srv, _, addr := serverAndHandler(t, bin)
	rline := srv.last("remote on ")

	child := exec.Command(os.Args[0], "-test.run=^TestHelperSendsAMessageTypeTheReceiverDoesNotKnow$", "-test.count=1")
	child.Env = append(os.Environ(), unknownTarget+"="+addrAfter(rline, "remote on ")+"/echo")
	out, err := runBounded(child, 30*time.Second)
	if err != nil {
		t.Fatalf("sender process: %v\n%s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(20 * time.Millisecond)
		if !srv.alive() {
			t.Fatalf("the node crashed on the unknown message type")
		}
		if srv.status()["dropped_remote_messages"].(float64) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not report the unknown messages: %v", srv.status())
		}
	}
	if !srv.alive() {
		t.Fatal("the node died")
	}
	c, err := echoOnce(addr, "still serving")
	if err != nil {
		t.Fatalf("after the unknown messages: %v", err)
	}
	c.Close()
}

// runBounded runs cmd, killing it after d.
func runBounded(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.Bytes(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return buf.Bytes(), fmt.Errorf("still running after %v", d)
	}
}

func protoreflectString(s string) protoreflect.Value { return protoreflect.ValueOfString(s) }

// logLevel is the children's log level: CROSSNODE_LOG, else error.
func logLevel() string {
	if l := os.Getenv("CROSSNODE_LOG"); l != "" {
		return l
	}
	return "error"
}
