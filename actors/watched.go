package actors

import (
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tcpactor/tcpactor/messages"
)

// futureIDPrefix begins the Id of every Proto.Actor future, local or on
// another node: future.go names it "future"+NextId(), and NextId starts
// with '$', which Spawn's names do not.
const futureIDPrefix = "future$"

// refuseFuture refuses a future as the subscriber or owner a request names
// (or leaves to its sender, as RequestFuture's sender is a future). Both are
// watched for as long as they last, and a future cannot be: it takes the
// Watch system message as its result and ends (future.go,
// futureProcess.SendSystemMessage), the reply then races that result, and
// it never answers with Terminated, so the server or the connection would
// keep it, and send it events, for good. role is "a subscriber" or "an
// owner", what for says what the actor would do.
func refuseFuture(pid *actor.PID, role, what string) *messages.Error {
	if pid == nil || !strings.HasPrefix(pid.Id, futureIDPrefix) {
		return nil
	}
	return invalid("name %s: a future cannot %s (%s)", role, what, pid)
}
