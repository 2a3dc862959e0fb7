// An agent logging with zerolog to logd's socket (tests/test_go_dialects.py): each line also
// goes to standard output, so the test can read what was sent.
package main

import (
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"
)

func main() {
	socket, count, format := os.Args[1], os.Args[2], os.Args[3]
	n, _ := strconv.Atoi(count)
	switch format {
	case "unixms":
		zerolog.TimeFieldFormat = zerolog.TimeFormatUnixMs
	case "nano":
		zerolog.TimeFieldFormat = time.RFC3339Nano
	}
	conn, err := net.Dial("unix", socket)
	if err != nil {
		panic(err)
	}
	logger := zerolog.New(io.MultiWriter(conn, os.Stdout)).With().Timestamp().Str("agent", "planner").Logger()
	levels := []zerolog.Level{zerolog.InfoLevel, zerolog.WarnLevel, zerolog.InfoLevel, zerolog.DebugLevel}
	for i := 0; i < n; i++ {
		logger.WithLevel(levels[i%len(levels)]).
			Int("seq", i).
			Str("tool", "search").
			Dur("elapsed", time.Duration(1234567*(i+1))).
			Float64("score", float64(i)/7).
			Str("note", "naïve café ☕ \"quoted\"\ttab").
			Msg("step finished")
	}
	conn.Close()
}
