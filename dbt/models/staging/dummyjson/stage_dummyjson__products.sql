{{ config(materialized='incremental', unique_key='product_id', on_schema_change='fail') }}

with

source as (

    -- the rows of files loaded since this model's last build (every row on a full build)
    select * from {{ landing_new_rows(source('dummyjson', 'products')) }}

),

renamed as (

    select
        cast(id as integer) as product_id,
        title as product_name,
        category,
        brand,
        cast(price as decimal(12, 2)) as price,
        cast(stock as integer) as stock,
        filename as source_file,
        _landing_batch

    from source

),

newest as (

    -- every export is a full snapshot: keep each product from the newest file (accepted names sort by landing time)
    select * from renamed
    qualify row_number() over (partition by product_id order by source_file desc) = 1

),

final as (

    select
        newest.* exclude (_landing_batch),
        (select max(_landing_batch) from renamed) as _landing_high
    from newest
    {% if is_incremental() %}
    -- a file that landed late loses to the newer file this table already holds
    left join {{ this }} as built on built.product_id = newest.product_id
    where built.product_id is null or newest.source_file > built.source_file
    {% endif %}

)

select * from final
