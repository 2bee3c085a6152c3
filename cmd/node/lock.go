package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
	"github.com/troupe-dev/troupe/mutex"
)

func lockCmd() *cobra.Command {
	o := &kvOptions{}
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Take and release lease locks through a node's HTTP API",
		Long: `lock talks to the lease lock service of a node (package mutex, replicated by
the raft group): any node of the group serves every request.

  node lock acquire NAME --ttl 10s [--owner WHO]   take NAME; prints its fencing token
  node lock release NAME --fencing-token N         release NAME held with token N

A lease ends by itself after its TTL (100ms to 10m) unless released. Pass the
fencing token with every write to the protected store: it grows with every
grant, so the store can refuse a holder whose lease has ended.

(--token is the API's bearer token, as for every command that talks to a
node; the lock's fencing token is --fencing-token.)`,
	}
	o.flags(cmd)
	call := func(method, name, query string, body, out any) error {
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		defer cancel()
		c, err := o.client()
		if err != nil {
			return err
		}
		_, err = c.Do(ctx, method, "/v1/locks/"+url.PathEscape(name)+query, body, out)
		return err // explain names an unreachable node's address
	}

	var ttl time.Duration
	var owner string
	acquire := &cobra.Command{
		Use:   "acquire NAME",
		Short: "Take the lock NAME for --ttl; print its fencing token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < mutex.MinLockTTL || ttl > mutex.MaxLockTTL {
				return fmt.Errorf("--ttl %v: a lease lasts from %v to %v, e.g. --ttl 10s", ttl, mutex.MinLockTTL, mutex.MaxLockTTL)
			}
			if ttl%time.Millisecond != 0 {
				return fmt.Errorf("--ttl %v: use whole milliseconds", ttl)
			}
			body := map[string]any{"ttl_ms": ttl.Milliseconds()}
			if owner != "" {
				body["owner"] = owner
			}
			var out struct {
				Token uint64 `json:"token"`
			}
			if err := call(http.MethodPost, args[0], "", body, &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			return nil
		},
	}
	acquire.Flags().DurationVar(&ttl, "ttl", 0, "the lease's length (100ms to 10m); required")
	acquire.Flags().StringVar(&owner, "owner", "", "who takes the lock, shown to others while it holds (default: the client's address)")
	_ = acquire.MarkFlagRequired("ttl")

	var token uint64
	release := &cobra.Command{
		Use:   "release NAME",
		Short: "Release the lock NAME held with --fencing-token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == 0 {
				return fmt.Errorf("--fencing-token: give the token acquire printed (a positive integer)")
			}
			if err := call(http.MethodDelete, args[0], fmt.Sprintf("?token=%d", token), nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "released")
			return nil
		},
	}
	release.Flags().Uint64Var(&token, "fencing-token", 0, "the holder's fencing token (as acquire printed it); required")
	_ = release.MarkFlagRequired("fencing-token")
	cmd.AddCommand(acquire, release)
	return cmd
}
