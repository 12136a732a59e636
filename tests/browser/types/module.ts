// Type check of simples.d.ts as a module (see usage.ts for the whole API):
// a bundled application imports simples.js, whose `module.exports` is the
// same object as the global.

import simples from '../../../crates/simples/assets/simples';
import type { ObjectSocket, Options } from '../../../crates/simples/assets/simples';

const options: Options = { ackTimeout: 5000 };
const socket: ObjectSocket<{ said: string }> = simples.connect<{ said: string }>('/chat', { ...options, mode: 'object' });
socket.on('said', (text) => text.toUpperCase());
export const sameObject: typeof simples = window.simples;
// @ts-expect-error: simples.js exports `connect` and `Socket` only
simples.disconnect();
