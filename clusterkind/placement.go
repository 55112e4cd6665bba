package clusterkind

import "github.com/asynkron/protoactor-go/cluster"

// forgetMisplaced drops this member's cached PID of identity (of kind) when
// the PID is not on the member that this member's view of the cluster now
// names as the identity's owner, so that the next request looks the owner
// up again. Call it before each request by identity.
//
// Proto.Actor's disthash lookup asks the owner by the asker's view, and
// the owner's placement actor activates whatever it is asked, whatever its
// own view; it stops an activation that is not its own only when its own
// view changes later. While the members' views differ (a member that joins
// is seen by one member a health check later than by another, a long wait
// under load), a member with the older view gets an activation on a member
// whose newer view does not make it the owner: nothing ever stops that
// activation, and the PID cache keeps its PID for good (it forgets PIDs only
// of members that leave, or after a request that failed). When the views
// agree again, this member would go on sending to an activation that no
// other member uses: for a topic, one without subscribers, where every
// event is lost (crossnode
// TestATopicActivatedForAMemberThatSawTheClusterLateStillReachesTheSubscribers).
func forgetMisplaced(c *cluster.Cluster, identity, kind string) {
	pid, ok := c.PidCache.Get(identity, kind)
	if !ok || pid == nil {
		return
	}
	// The member list the provider last gave this member: the one its
	// disthash lookup places identities by. MemberList.Members takes no
	// lock (the list is replaced whole, never changed in place), as
	// Proto.Actor's own topic actor reads it.
	r := cluster.NewRendezvous()
	r.UpdateMembers(c.MemberList.Members().Members())
	if owner := r.GetByClusterIdentity(cluster.NewClusterIdentity(identity, kind)); owner != "" && owner != pid.Address {
		c.PidCache.RemoveByValue(identity, kind, pid)
	}
}
