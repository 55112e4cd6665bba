package owner_test

import "github.com/tcpactor/tcpactor/internal/servertest"

var (
	listening = servertest.Listening
	viewFrom  = servertest.ViewFrom
	dial      = servertest.Dial
)
