// An ethereumjs discv4 node (@ethereumjs/devp2p's DPT) for tests/it/ethereumjs.rs: binds
// IP (any port), bootstraps from the discv4 node at BOOT_IP:BOOT_UDP with node id
// BOOT_ID (128 hex digits), and prints one JSON line every 250 ms: its own id and the
// ids of the peers in its table. Runs until killed.
//
//   node dpt.mjs IP BOOT_IP BOOT_UDP BOOT_ID
import { randomBytes } from 'node:crypto'
import { DPT } from '@ethereumjs/devp2p'

const [ip, bootIp, bootUdp, bootId] = process.argv.slice(2)
const hex = (bytes) => Buffer.from(bytes).toString('hex')
const dpt = new DPT(randomBytes(32), {
  endpoint: { address: ip, udpPort: null, tcpPort: null },
  refreshInterval: 1000,
  timeout: 2000,
})
dpt.events.on('error', (e) => console.error(`dpt error: ${e.message}`))
dpt.events.on('listening', async () => {
  try {
    await dpt.bootstrap({
      id: Buffer.from(bootId, 'hex'),
      address: bootIp,
      udpPort: Number(bootUdp),
      tcpPort: Number(bootUdp),
    })
  } catch (e) {
    console.error(`bootstrap: ${e.message}`)
  }
})
dpt.bind(0, ip)
setInterval(() => {
  const peers = dpt.getPeers().map((p) => hex(p.id))
  console.log(JSON.stringify({ id: hex(dpt.id), peers }))
}, 250)
