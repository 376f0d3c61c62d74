// Review for leads (#/review: the queue; #/review/<revision id>: the review view). A revision waiting for a verdict
// opens in the NiiVue viewer with a diff overlay against the label it was made from; Accept, Reject with a comment,
// Edit and accept, or, for a double read, adjudicate the two reads. The parts live in ../review/.
import type { Me } from '../api'
import { ReviewQueue } from '../review/ReviewQueue'
import { ReviewView } from '../review/ReviewView'
import '../review/review.css'

export default function Review({ me, path, go }: { me: Me; path: string; go: (to: string) => void }) {
  const id = Number(path.replace(/^\/review\/?/, ''))
  if (id > 0) return <ReviewView key={id} me={me} id={id} go={go} />
  return <ReviewQueue me={me} go={go} />
}
