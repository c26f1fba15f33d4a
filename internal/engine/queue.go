package engine

import (
	"container/heap"
	"sync"
	"time"
)

// rotationQueue orders roles by when they are next due: a binary heap with an index by
// name, so that peeking is O(1) and scheduling, rescheduling or removing a role is
// O(log n). It holds names and times only; roles are read from storage when they fall due.
//
// sdk/queue does the same job but deep-copies every item it is given (copystructure) and
// cannot peek, so every idle tick would pop and re-push; BENCHMARKS.md compares the two.
type rotationQueue struct {
	mu     sync.Mutex
	items  queueItems
	byName map[string]*queueItem
}

type queueItem struct {
	name  string
	due   int64 // unix nanoseconds
	index int
}

func NewRotationQueue() *rotationQueue {
	return &rotationQueue{byName: make(map[string]*queueItem)}
}

// Schedule sets name to fall due at due, adding or moving it.
func (q *rotationQueue) Schedule(name string, due time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it, ok := q.byName[name]; ok {
		it.due = due.UnixNano()
		heap.Fix(&q.items, it.index)
		return
	}
	it := &queueItem{name: name, due: due.UnixNano()}
	q.byName[name] = it
	heap.Push(&q.items, it)
}

// Remove drops name from the queue, if present.
func (q *rotationQueue) Remove(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it, ok := q.byName[name]; ok {
		heap.Remove(&q.items, it.index)
		delete(q.byName, name)
	}
}

// PopDue removes and returns the earliest role if it is due at now.
func (q *rotationQueue) PopDue(now time.Time) (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 || q.items[0].due > now.UnixNano() {
		return "", false
	}
	it := heap.Pop(&q.items).(*queueItem)
	delete(q.byName, it.name)
	return it.name, true
}

// Peek returns when the earliest role falls due, if any is queued.
func (q *rotationQueue) Peek() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, q.items[0].due), true
}

// Due returns when name is due, if it is queued.
func (q *rotationQueue) Due(name string) (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it, ok := q.byName[name]; ok {
		return time.Unix(0, it.due), true
	}
	return time.Time{}, false
}

func (q *rotationQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// queueItems implements heap.Interface, earliest first.
type queueItems []*queueItem

func (h queueItems) Len() int           { return len(h) }
func (h queueItems) Less(i, j int) bool { return h[i].due < h[j].due }
func (h queueItems) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *queueItems) Push(x any) {
	it := x.(*queueItem)
	it.index = len(*h)
	*h = append(*h, it)
}

func (h *queueItems) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

// CountDueBefore is how many queued roles fall due before t: O(n), for metrics only.
func (q *rotationQueue) CountDueBefore(t time.Time) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n, at := 0, t.UnixNano()
	for _, it := range q.items {
		if it.due < at {
			n++
		}
	}
	return n
}
