#!/usr/bin/env node
// Runs the TypeScript CLI in this process through tsx's loader, so `./chaperone` needs no build step
// and signals (Ctrl-C, SIGTERM) reach the gateway directly rather than a wrapper.
import { register } from 'tsx/esm/api';

register();
await import('../main.ts');
