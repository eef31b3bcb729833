// The installer lives with the chaos harness (jepsen-lite/src/debian-packages.ts), which needs it at
// run time from dist/ as well (iproute2 and iptables for --net netns); tests import it from here.
export { ensureDebianPackage } from '../../jepsen-lite/src/debian-packages.js';
