package model

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The due index lets a start rebuild the rotation queue from one LIST instead of one read
// per role: in Vault every read is a round trip from the plugin back into Vault, so at
// 10,000 roles the reads dominate the rebuild (BENCHMARKS.md). For each queued role it
// keeps an empty entry whose key carries the due time:
//
//	due/<name>:<unix seconds>
//
// (role names cannot contain ':'). It is a hint, never the truth: the scheduler keeps it in
// step whenever it queues a role, but a crash between a role's write and its index update
// can leave it stale, so after loading the queue from it the start reads every role anyway,
// in the background while the scheduler already dispatches, and corrects both the queue and
// the index. A stale entry costs at most a job that finds its role not due (too early) or a
// rotation late by the time that pass takes (seconds at 10,000 roles); a role missing from
// the index is queued by the pass.
const DueIndexPrefix = "due/"

func DueIndexKey(name string, due time.Time) string {
	return DueIndexPrefix + name + ":" + strconv.FormatInt(due.Unix(), 10)
}

// parseDueIndexKey splits an index key (without the prefix) into name and due time.
func parseDueIndexKey(key string) (string, time.Time, bool) {
	i := strings.LastIndexByte(key, ':')
	if i <= 0 {
		return "", time.Time{}, false
	}
	secs, err := strconv.ParseInt(key[i+1:], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return key[:i], time.Unix(secs, 0).UTC(), true
}

// LoadDueIndex lists the index and returns the due time of every role in it; where a crash
// left two entries for one role, the earlier wins (an early job only finds the role not
// due) and the others are returned as stale keys to delete.
func LoadDueIndex(ctx context.Context, s logical.Storage) (map[string]time.Time, map[string]string, []string, error) {
	keys, err := s.List(ctx, DueIndexPrefix)
	if err != nil {
		return nil, nil, nil, err
	}
	due := make(map[string]time.Time, len(keys))
	current := make(map[string]string, len(keys))
	var stale []string
	for _, k := range keys {
		name, t, ok := parseDueIndexKey(k)
		if !ok {
			stale = append(stale, k)
			continue
		}
		if prev, seen := due[name]; seen {
			if !t.Before(prev) {
				stale = append(stale, k)
				continue
			}
			stale = append(stale, current[name])
		}
		due[name], current[name] = t, k
	}
	return due, current, stale, nil
}
