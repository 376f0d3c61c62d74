// A table whose every cell carries its raw value (data-col, data-value) for tests and CSV, with a CSV button.
import type { ReactNode } from 'react'
import { downloadCsv, type Cell } from './csv'

export interface Column<T> {
  key: string
  label: string
  value: (row: T) => Cell
  render?: (row: T) => ReactNode
  numeric?: boolean
  title?: string
}

export function formatCell(v: Cell, digits = 3): string {
  if (v === null || v === undefined) return '–'
  if (typeof v === 'boolean') return v ? 'yes' : 'no'
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en') : v.toFixed(digits)
  return v
}

export function DataTable<T>({ name, title, columns, rows, rowKey, note, empty, extra, selected }: {
  name: string
  title: string
  columns: Column<T>[]
  rows: T[]
  rowKey: (row: T) => string
  note?: ReactNode
  empty?: string
  extra?: ReactNode
  selected?: (row: T) => boolean
}) {
  const csv = () => downloadCsv(`atlas-${name}.csv`, columns.map((c) => c.key),
    rows.map((r) => columns.map((c) => c.value(r))))
  return (
    <section className="dash-table" data-table={name} data-rows={rows.length}>
      <header>
        <h3>{title}</h3>
        <span className="spacer" />
        {extra}
        <button type="button" onClick={csv} data-csv={name} title="download this table as CSV">CSV</button>
      </header>
      {note && <p className="muted note">{note}</p>}
      {rows.length === 0 ? <p className="muted" data-empty>{empty ?? 'Nothing yet.'}</p> : (
        <div className="scroll">
          <table>
            <thead>
              <tr>{columns.map((c) => <th key={c.key} title={c.title} className={c.numeric ? 'num' : ''}>{c.label}</th>)}</tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={rowKey(r)} data-row={rowKey(r)} className={selected?.(r) ? 'selected' : ''}>
                  {columns.map((c) => {
                    const v = c.value(r)
                    return (
                      <td key={c.key} data-col={c.key} data-value={v === null || v === undefined ? '' : String(v)}
                        className={c.numeric ? 'num' : ''}>
                        {c.render ? c.render(r) : formatCell(v)}
                      </td>
                    )
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}

// A chart's frame: its title, the exact series it draws (data-series, JSON) and a CSV of them.
export function ChartFrame({ name, title, series, csv, children, note, height = 260 }: {
  name: string
  title: string
  series: unknown
  csv?: { header: string[]; rows: Cell[][] }
  children: ReactNode
  note?: ReactNode
  height?: number
}) {
  return (
    <figure className="dash-chart" data-chart={name} data-series={JSON.stringify(series)}>
      <figcaption>
        <h3>{title}</h3>
        <span className="spacer" />
        {csv && <button type="button" data-csv={name}
          onClick={() => downloadCsv(`atlas-${name}.csv`, csv.header, csv.rows)}>CSV</button>}
      </figcaption>
      {note && <p className="muted note">{note}</p>}
      <div className="plot" style={{ height }}>{children}</div>
    </figure>
  )
}

export const PALETTE = ['#4e9bd6', '#e4a03a', '#5cb85c', '#d9534f', '#9b6fd0', '#47b8b0', '#c7c95b', '#e377c2',
  '#8c8c8c', '#bcbd22']

export function errorText(e: unknown): string {
  if (e && typeof e === 'object' && 'body' in e) {
    const body = (e as { body: Record<string, unknown> }).body
    if (typeof body.detail === 'string') return body.detail
    const parts = Object.entries(body).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(' ') : String(v)}`)
    if (parts.length) return parts.join('; ')
  }
  return e instanceof Error ? e.message : String(e)
}
