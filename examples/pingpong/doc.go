// Package pingpong is the smallest complete Troupe protocol: every node
// pings a peer on a timer and counts the pongs it gets back.
package pingpong
