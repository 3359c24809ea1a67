package charts

import "github.com/janpfeifer/gonb/gonbui"

// Display shows the chart as the output of the current GoNB notebook cell
// (gonbui.DisplayHTML of Fragment: the inlined library, the chart's <div> and
// its script; nothing is fetched). Outside GoNB it only checks the chart and
// returns its error, so scripts that share cells with notebooks still run.
//
// Each displayed chart carries the ~1 MB library, because every cell runs as
// its own process and a notebook reopened later must still draw each output
// alone; the page evaluates the library only once.
func Display(c *Chart) error {
	frag, err := c.Fragment()
	if err != nil {
		return err
	}
	if gonbui.IsNotebook {
		gonbui.DisplayHTML(frag)
	}
	return nil
}

// MustDisplay is Display for notebooks: it panics on error.
func MustDisplay(c *Chart) {
	if err := Display(c); err != nil {
		panic(err)
	}
}

// DisplayAll displays every chart in order, stopping at the first error.
func DisplayAll(cs []NamedChart) error {
	for _, nc := range cs {
		if err := Display(nc.Chart); err != nil {
			return err
		}
	}
	return nil
}
