with

source as (

    select * from {{ source('finance', 'exchange_rates') }}

),

renamed as (

    select
        upper(currency) as currency,
        as_of as rate_date,
        cast(rate_to_usd as decimal(18, 6)) as rate_to_usd,
        filename as source_file
    from source

),

keyed as (

    select currency || '-' || strftime(rate_date, '%Y-%m-%d') as rate_id, * from renamed

),

final as (

    -- a later file corrects an earlier one: keep each currency and day from the newest accepted file
    select * from keyed
    qualify row_number() over (partition by rate_id order by source_file desc) = 1

)

select * from final
