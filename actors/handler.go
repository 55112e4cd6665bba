package actors

// Handler serves one connection inside its ConnectionActor (Ranch's model).
// PLACEHOLDER: the ConnectionActor work defines its methods.
type Handler interface{}

// HandlerFactory makes the Handler of one new connection.
type HandlerFactory func() Handler
