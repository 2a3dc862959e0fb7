// An agent logging with zap's production JSON encoder to logd's socket
// (tests/test_go_dialects.py): each line also goes to standard output.
package main

import (
	"net"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	socket, count := os.Args[1], os.Args[2]
	n, _ := strconv.Atoi(count)
	conn, err := net.Dial("unix", socket)
	if err != nil {
		panic(err)
	}
	out := zapcore.NewMultiWriteSyncer(zapcore.AddSync(conn), zapcore.AddSync(os.Stdout))
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), out, zap.DebugLevel)
	logger := zap.New(core, zap.AddCaller()).Named("planner")
	for i := 0; i < n; i++ {
		fields := []zap.Field{
			zap.Int("seq", i),
			zap.String("agent", "planner"),
			zap.String("tool", "search"),
			zap.Duration("elapsed", time.Duration(1234567*(i+1))),
			zap.Float64("score", float64(i)/7),
			zap.String("note", "naïve café ☕ \"quoted\"\ttab\x01"),
		}
		if i%3 == 0 {
			logger.Debug("step finished", fields...)
		} else {
			logger.Info("step finished", fields...)
		}
	}
	logger.Sync()
	conn.Close()
}
