// Package fdutil holds the one fd helper several packages need: the raw
// descriptor of an open file or socket, for handing it over across exec.
package fdutil
