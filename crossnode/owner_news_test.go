package crossnode

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/internal/testkit"
	"github.com/tcpactor/tcpactor/owner"
	"github.com/tcpactor/tcpactor/server"
)

// serverNews starts an owner on node 1 for server and returns what its
// OnServer hears.
func serverNews(t *testing.T, srv *actor.PID) <-chan error {
	t.Helper()
	news := make(chan error, 4)
	spawnOwner(t, 1, owner.Config{Server: srv, Handler: owner.Discard(),
		OnServer: func(_ *actor.PID, err error) {
			select {
			case news <- err:
			default:
			}
		}})
	return news
}

func nextNews(t *testing.T, news <-chan error) error {
	t.Helper()
	select {
	case err := <-news:
		return err
	case <-time.After(replyTimeout):
		t.Fatalf("OnServer heard nothing within %v", replyTimeout)
		return nil
	}
}

func TestOwnerHearsItIsSubscribedThenThatItsServerIsGone(t *testing.T) {
	srv, _ := remoteServer(t, 0, 1)
	news := serverNews(t, srv.PID())
	if err := nextNews(t, news); err != nil {
		t.Fatalf("first news: %v; want nil (subscribed)", err)
	}
	local := server.Wrap(testkit.Remote(t, 0), actor.NewPID(srv.PID().Address, srv.PID().Id))
	if err := local.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := nextNews(t, news); !errors.Is(err, server.ErrNoServer) || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("news after the server stopped: %v; want ErrNoServer, gone", err)
	}
}

func TestOwnerHearsThatNoServerHasTheNameItSubscribesTo(t *testing.T) {
	missing := actor.NewPID(testkit.Remote(t, 0).Address(), "nosuchserver")
	err := nextNews(t, serverNews(t, missing))
	if !errors.Is(err, server.ErrNoServer) || !strings.Contains(err.Error(), `no server named "nosuchserver"`) {
		t.Errorf("news of a missing server: %v; want ErrNoServer naming it", err)
	}
}
