package ipvs

import (
	"maps"
	"slices"
	"testing"
)

func TestJournalRollbackRestoresFirstValues(t *testing.T) {
	j := newJournal[string, int]()
	j.set("a", 1)
	j.set("b", 2)
	j.commit()

	j.set("a", 10)
	j.set("a", 11)
	j.delete("b")
	j.set("c", 3)
	j.delete("missing")
	j.rollback()
	if want := map[string]int{"a": 1, "b": 2}; !maps.Equal(j.m, want) {
		t.Errorf("after rollback = %v, want %v", j.m, want)
	}

	j.set("a", 5)
	j.commit()
	j.rollback()
	if v, _ := j.get("a"); v != 5 {
		t.Errorf("rollback after commit undid a committed edit: a = %d", v)
	}
}

func TestRefCountTransitions(t *testing.T) {
	r := newRefCount[string]()
	r.inc("kept")
	r.inc("shared")
	r.inc("shared")
	r.inc("gone")
	r.commit()

	r.dec("shared") // still wanted once
	r.dec("gone")
	r.inc("new")
	r.dec("kept") // removed and added back: no transition
	r.inc("kept")
	appeared, gone := r.transitions()
	if !slices.Equal(appeared, []string{"new"}) || !slices.Equal(gone, []string{"gone"}) {
		t.Errorf("transitions = %v, %v; want [new], [gone]", appeared, gone)
	}
	r.rollback()
	if want := map[string]int{"kept": 1, "shared": 2, "gone": 1}; !maps.Equal(r.m, want) {
		t.Errorf("after rollback = %v, want %v", r.m, want)
	}
}
