// Package config is a node's configuration: a YAML file with one section
// per protocol or concern (node, membership, election, jobs, raft,
// telemetry, api, tls), environment variables and `node run` flags over it, validation
// that names every offending key with where its value came from and what
// is valid, and the changes between two configurations for run-time
// reconfiguration.
//
// # Usage
//
//	cfg, err := config.Load(config.Sources{File: "node.yaml", Env: os.Environ(), Flags: set})
//	// err: "jobs.slots (node.yaml:12): is -1; use 1 to 1024 (0: one per CPU)"
//	jc, err := cfg.JobsConfig(dataDir)          // the protocols' own configurations
//	for _, ch := range config.Changes(cfg, next) { // what a new file changes
//		if !ch.Key.Live { /* needs a restart */ }
//	}
//
// Precedence: a flag over an environment variable (TROUPE_<SECTION>_<KEY>,
// e.g. TROUPE_JOBS_SLOTS) over the file over the default. Decoding is
// strict: an unknown section or key, a value of the wrong type, a key given
// twice or a duration without a unit is an error naming the key and the
// file's line; so is a TROUPE_<SECTION>_... variable that names no key.
// The ranges of the protocols' settings are not copied here: the file's
// election, jobs and raft sections are read into election.Config,
// jobs.Config (with jobs.Limits) and consensus.Config, and their Validate
// decides; each problem it reports is named by the key of the field it
// starts with, other field names in the message become keys ("set Join"
// reads "set raft.join"). What only the file knows stays here: unknown keys,
// types, rules across sections (the raft elector needs raft.peers) and
// bounds no Go caller needs (jobs.max_steps at least 1000).
// Relative paths in the file are relative to the file's directory. Secrets
// (api.token, membership.gossip_key) are never echoed in errors or in
// [Config.Map]; token_file and gossip_key_file are read when the file is
// loaded. [Keys] lists every key with its variable, its flag, and whether
// it is live (applied without a restart) or needs a restart;
// [RunTimeChanges] refuses a new configuration that changes a
// restart-only key ([ErrRestart]: "jobs.exec cannot change at run time;
// restart the node with the new file"). The keys that can run code or
// widen access — jobs.exec and exec_cmd, the API's token, address and TLS,
// the nodes' TLS — are never live (DESIGN §7).
//
// The YAML library is go.yaml.in/yaml/v3, the YAML organisation's
// maintained continuation of gopkg.in/yaml.v3; the file is walked as a
// node tree rather than decoded into structs, so that every error names
// the section, the key and the line.
//
// # Concurrency
//
// A Config is a value: load it, then read it from any goroutine; do not
// change it while others read it.
//
// # Testing
//
// The tests load a full file, check the precedence of the layers, and run
// a table of malformed files, variables and flags against the errors they
// must give.
package config
