package actors

// Protocol is one distributed protocol running on a node: a small piece of
// state and the handlers that change it. Every node runs the same protocol
// under the same name, so a message sent by a protocol reaches the protocol
// of that name on another node.
type Protocol interface {
	// Name identifies the protocol on every node: "bully", "raft", "jobs".
	// Letters, digits, '.', '_' and '-'.
	Name() ProtocolName
	// Init runs once per incarnation, inside the protocol's actor: at start
	// and after each supervised restart, on a fresh value from the
	// protocol's Factory. It sets up state, registers handlers and starts
	// timers. An error at the first start fails Node.Start; later, it counts
	// as a failure and the protocol is restarted again.
	Init(ctx *Context) error
}

// Factory makes a fresh protocol value for each incarnation, so a restart
// begins from clean state, as in Akka's Props or protoactor's producers.
type Factory func() Protocol

// Stopper is implemented by protocols that own something beyond their
// fields (a goroutine, a file). Stop runs in the protocol's actor when an
// incarnation ends: before a restart and when the protocol stops. Timers and
// pending requests are cancelled by the runtime after it returns.
type Stopper interface {
	Stop(ctx *Context)
}
