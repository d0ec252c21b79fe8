package b2bua

import "testing"

func TestChooseFinal(t *testing.T) {
	for _, tc := range []struct {
		codes []int
		want  int
	}{
		{nil, 408},
		{[]int{486}, 486},
		{[]int{486, 603}, 603},
		{[]int{603, 486, 500}, 603},
		{[]int{500, 486}, 486},
		{[]int{503}, 500},
		{[]int{503, 504}, 500},
		{[]int{404, 484}, 484},
		{[]int{480, 407, 486}, 407},
		{[]int{302, 486}, 302},
		{[]int{600, 603}, 600},
		{[]int{100, 180}, 408},
	} {
		if got := chooseFinal(tc.codes); got != tc.want {
			t.Errorf("chooseFinal(%v) = %d, want %d", tc.codes, got, tc.want)
		}
	}
}
