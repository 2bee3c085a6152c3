package consensus

import (
	"fmt"

	"github.com/rs/zerolog"
)

// raftLogger sends etcd raft's logs to the protocol's zerolog logger.
// Raft's Info (every election, every term change) is logged at debug level;
// its Fatal and Panic panic, which the supervisor turns into a restart.
type raftLogger struct{ l zerolog.Logger }

func (r *raftLogger) Debug(v ...any)                 { r.l.Debug().Msg(fmt.Sprint(v...)) }
func (r *raftLogger) Debugf(format string, v ...any) { r.l.Debug().Msgf(format, v...) }
func (r *raftLogger) Info(v ...any)                  { r.l.Debug().Msg(fmt.Sprint(v...)) }
func (r *raftLogger) Infof(format string, v ...any)  { r.l.Debug().Msgf(format, v...) }
func (r *raftLogger) Warning(v ...any)               { r.l.Warn().Msg(fmt.Sprint(v...)) }
func (r *raftLogger) Warningf(format string, v ...any) {
	r.l.Warn().Msgf(format, v...)
}
func (r *raftLogger) Error(v ...any)                 { r.l.Error().Msg(fmt.Sprint(v...)) }
func (r *raftLogger) Errorf(format string, v ...any) { r.l.Error().Msgf(format, v...) }
func (r *raftLogger) Fatal(v ...any)                 { r.Panic(v...) }
func (r *raftLogger) Fatalf(format string, v ...any) { r.Panicf(format, v...) }
func (r *raftLogger) Panic(v ...any) {
	s := fmt.Sprint(v...)
	r.l.Error().Msg(s)
	panic("etcd raft: " + s)
}
func (r *raftLogger) Panicf(format string, v ...any) {
	s := fmt.Sprintf(format, v...)
	r.l.Error().Msg(s)
	panic("etcd raft: " + s)
}
