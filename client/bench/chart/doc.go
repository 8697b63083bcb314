// Package chart draws the comparison chart as a self-contained SVG, with no
// external tool: one row per benchmark case, a throughput panel and a p99
// latency panel, each with a bar per (cluster size, system) and its value.
// Each panel has its own scale, since cases measure different things.
package chart
