// Package actors holds tcpactor's two actors and the goroutines that wait for
// them: ServerActor is QTcpServer (a listening socket, the pending-connection
// queue, the newConnection and acceptError signals as events) and the
// ConnectionActor made by ConnectionProps is the QTcpSocket it hands out (credit-
// bounded reads, accounted writes, and an ending that always says
// Disconnected). Both are driven only by the protobuf messages of package
// messages, so they work the same from any node; the rules for what a remote
// node may send are in authz.go.
//
// Actors own state and never block; goroutines own the waiting: an accept
// goroutine per listener, a reader per serving connection, and a writer only
// while a socket's send buffer is full. docs/ARCHITECTURE.md draws the whole
// picture.
package actors
