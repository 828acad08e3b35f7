package bus

// ExportRestart is restart, for the tests.
var ExportRestart = restart
