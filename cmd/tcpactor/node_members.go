package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
)

// healthMisses is how many health checks in a row a member may miss, other
// than by refusing the connection, before it is taken out of the cluster.
const healthMisses = 3

// healthCheckTimeout bounds one health check (as the automanaged
// provider's).
const healthCheckTimeout = 2 * time.Second

// pollingProvider is Proto.Actor's automanaged provider (each member serves
// its automanaged.NodeModel on /_health and polls every member's, every
// refresh) but for one thing: a member whose check fails is taken out only
// when its health endpoint refuses the connection (its process is gone) or
// after healthMisses failed checks in a row, not at the first one. Proto.Actor's
// member list blocks for good every member that leaves the topology ("we
// will never allow a member that failed a health check to join back in"),
// and the automanaged provider drops a member at its first failed check, so
// one check slower than its 2 s time-out, on a loaded machine, put a live
// member out of this member's view for good while the others kept it: the
// members then place identities by different views, and a topic's events
// can go where its subscribers never are.
type pollingProvider struct {
	refresh time.Duration
	hosts   []string // health endpoints, HOST:PORT
	serve   func() error
	client  *http.Client
	log     *slog.Logger

	cl     *cluster.Cluster
	name   string
	known  map[string]*automanaged.NodeModel // by host: the last answer
	misses map[string]int                    // by host: failed checks in a row
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// newPollingProvider polls the health endpoints hosts every refresh; serve
// serves this member's own (it runs until Shutdown closes its listener).
func newPollingProvider(refresh time.Duration, serve func() error, hosts ...string) *pollingProvider {
	return &pollingProvider{
		refresh: refresh, hosts: hosts, serve: serve,
		client: &http.Client{Timeout: healthCheckTimeout},
		known:  map[string]*automanaged.NodeModel{}, misses: map[string]int{},
		done: make(chan struct{}),
	}
}

// StartMember serves this member's health endpoint and starts polling.
func (p *pollingProvider) StartMember(c *cluster.Cluster) error {
	p.cl, p.name, p.log = c, c.Config.Name, c.Logger()
	go func() { _ = p.serve() }() // ends when the listener is closed
	p.wg.Add(1)
	go p.poll()
	return nil
}

// StartClient polls without serving a health endpoint.
func (p *pollingProvider) StartClient(c *cluster.Cluster) error {
	p.cl, p.name, p.log = c, c.Config.Name, c.Logger()
	p.wg.Add(1)
	go p.poll()
	return nil
}

// Shutdown stops polling; the health endpoint's listener is closed by its
// owner.
func (p *pollingProvider) Shutdown(bool) error {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
	return nil
}

func (p *pollingProvider) poll() {
	defer p.wg.Done()
	for {
		p.check()
		select {
		case <-p.done:
			return
		case <-time.After(p.refresh):
		}
	}
}

// check polls every member once, all at the same time, and gives the
// cluster the members that answered or have not yet missed too many checks.
func (p *pollingProvider) check() {
	type answer struct {
		node *automanaged.NodeModel
		err  error
	}
	answers := make([]answer, len(p.hosts))
	var wg sync.WaitGroup
	for i, host := range p.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i].node, answers[i].err = p.get(host)
		}()
	}
	wg.Wait()
	var members []*cluster.Member
	for i, host := range p.hosts {
		switch a := answers[i]; {
		case a.err == nil:
			p.known[host], p.misses[host] = a.node, 0
		case errors.Is(a.err, syscall.ECONNREFUSED):
			delete(p.known, host) // nothing listens there: gone (or not up yet)
		default:
			p.misses[host]++
			if p.misses[host] >= healthMisses {
				delete(p.known, host)
			}
			if p.known[host] != nil {
				p.log.Info("tcpactor node: a member missed a health check", "member", host, "missed", p.misses[host], "error", a.err)
			}
		}
		if n := p.known[host]; n != nil && n.ClusterName == p.name {
			members = append(members, &cluster.Member{Id: n.ID, Host: n.Address, Port: int32(n.Port), Kinds: n.Kinds})
		}
	}
	if len(members) == 0 {
		return // not even this member answers: no topology is better than an empty one
	}
	p.cl.MemberList.UpdateClusterTopology(members)
}

// get asks one health endpoint for its member.
func (p *pollingProvider) get(host string) (*automanaged.NodeModel, error) {
	ctx, cancel := context.WithTimeout(context.Background(), healthCheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/_health", nil)
	if err != nil {
		return nil, err
	}
	res, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/_health: %s", host, res.Status)
	}
	var n automanaged.NodeModel
	if err := json.NewDecoder(res.Body).Decode(&n); err != nil {
		return nil, fmt.Errorf("%s/_health: %w", host, err)
	}
	return &n, nil
}
